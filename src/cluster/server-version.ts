/**
 * Cluster mode needs nats-server >= 2.11 (per-message TTLs, consumer pause; 2.9 silently ignores
 * per-key TTLs). The client learns the version of the server it is connected to from that
 * server's INFO; `assertServerVersion` refuses an older one with `ClusterServerTooOldError`.
 * Only the connected server is checked (INFO says nothing about its peers): call it again after
 * every reconnect (`watchServerVersion`), so each server the node reaches is checked in turn.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { ClusterServerTooOldError } from '../errors.js';

export const MIN_CLUSTER_SERVER_VERSION = '2.11.0';

/** `"2.11.4"`, `"v2.12.0-RC.1"` → `[2, 11, 4]`; undefined when it is not a version. */
export function parseServerVersion(version: string): [number, number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** Whether `version` is at least `minimum` (pre-release suffixes count as that release). */
export function serverVersionAtLeast(version: string, minimum = MIN_CLUSTER_SERVER_VERSION): boolean {
  const v = parseServerVersion(version);
  const min = parseServerVersion(minimum);
  if (!v || !min) return false;
  for (let i = 0; i < 3; i++) if (v[i] !== min[i]) return v[i]! > min[i]!;
  return true;
}

/** Throws `ClusterServerTooOldError` unless the connected server is >= 2.11. Returns its version. */
export function assertServerVersion(nc: Pick<NatsConnection, 'info' | 'getServer'>): string {
  const version = nc.info?.version ?? '';
  if (!serverVersionAtLeast(version)) {
    throw new ClusterServerTooOldError(nc.getServer(), version, MIN_CLUSTER_SERVER_VERSION);
  }
  return version;
}

/**
 * Checks the server again after every reconnect; calls `onTooOld` (e.g. close the connection and
 * report) when the node reached an older one. Ends when the connection closes.
 */
export async function watchServerVersion(
  nc: NatsConnection,
  onTooOld: (err: ClusterServerTooOldError) => void,
): Promise<void> {
  for await (const s of nc.status()) {
    if (s.type !== 'reconnect') continue;
    try {
      assertServerVersion(nc);
    } catch (err) {
      if (err instanceof ClusterServerTooOldError) onTooOld(err);
      else throw err;
    }
  }
}
