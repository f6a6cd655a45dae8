/**
 * Opens what a node needs in cluster mode (the `cluster:` section): one NATS connection, checked
 * for a server ≥ 2.11 (also after every reconnect), the JetStream store on it, and the node's
 * membership (heartbeats, route leases, route actions).
 */
import { hostname } from 'node:os';
import { connect, type NatsConnection, type TlsOptions } from '@nats-io/transport-node';
import type { ClusterServerTooOldError } from '../errors.js';
import { ClusterUnavailableError } from '../errors.js';
import { ClusterNode } from './cluster-node.js';
import { JetStreamStore } from './jetstream-store.js';
import { watchServerVersion } from './server-version.js';

export interface ClusterBackendOptions {
  nodeId?: string | undefined;
  prefix: string;
  nats: {
    servers: string | string[];
    replicas: number;
    discoverServers?: boolean;
    user?: string | undefined;
    pass?: string | undefined;
    token?: string | undefined;
    /** PEM file paths, already resolved. */
    tls?: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined } | undefined;
  };
  leaseTtlMs: number;
  publishTimeoutMs: number;
  dedupWindowMs: number;
  dataDir: string;
  streams: readonly string[];
  routes: readonly { name: string; streams: readonly string[]; group?: string | undefined }[];
  version: string;
  configDigest?: string;
  onConfigMismatch?: (peer: string) => void;
  onLeaseChange?: (route: string, owned: boolean, reason: 'acquired' | 'lost' | 'handed-over') => void;
  onRenewal?: (ms: number) => void;
  onError?: (err: unknown, context: string) => void;
  /** The node reached a nats-server older than 2.11 after a reconnect. */
  onServerTooOld?: (err: ClusterServerTooOldError) => void;
}

export interface ClusterBackend {
  nc: NatsConnection;
  store: JetStreamStore;
  node: ClusterNode;
  /** After the store and the node stopped: closes the connection. */
  close(): Promise<void>;
}

function tlsOptions(tls: ClusterBackendOptions['nats']['tls']): TlsOptions | undefined {
  if (!tls) return undefined;
  return {
    ...(tls.ca === undefined ? {} : { caFile: tls.ca }),
    ...(tls.cert === undefined ? {} : { certFile: tls.cert }),
    ...(tls.key === undefined ? {} : { keyFile: tls.key }),
  };
}

export async function openClusterBackend(options: ClusterBackendOptions): Promise<ClusterBackend> {
  const nodeId = options.nodeId ?? hostname();
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: options.nats.servers,
      user: options.nats.user,
      pass: options.nats.pass,
      token: options.nats.token,
      tls: tlsOptions(options.nats.tls),
      name: `waystation ${nodeId}`,
      ignoreClusterUpdates: options.nats.discoverServers === false,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: 5_000,
    });
  } catch (err) {
    throw new ClusterUnavailableError(`Could not connect to NATS at ${String(options.nats.servers)}`, {
      cause: err,
    });
  }
  try {
    const store = await JetStreamStore.open({
      nc,
      prefix: options.prefix,
      nodeId,
      replicas: options.nats.replicas,
      dataDir: options.dataDir,
      streams: options.streams,
      routes: options.routes,
      dedupWindowMs: options.dedupWindowMs,
      publishTimeoutMs: options.publishTimeoutMs,
    });
    const node = await ClusterNode.open({
      nc,
      store,
      nodeId,
      prefix: options.prefix,
      replicas: options.nats.replicas,
      leaseTtlMs: options.leaseTtlMs,
      routes: options.routes.map((r) => ({ name: r.name, group: r.group })),
      version: options.version,
      configDigest: options.configDigest,
      onConfigMismatch: options.onConfigMismatch,
      onLeaseChange: options.onLeaseChange,
      onRenewal: options.onRenewal,
      onError: options.onError,
    });
    void watchServerVersion(nc, (err) => options.onServerTooOld?.(err)).catch(() => {});
    return { nc, store, node, close: () => nc.close().catch(() => {}) };
  } catch (err) {
    await nc.close().catch(() => {});
    throw err;
  }
}
