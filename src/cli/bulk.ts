/**
 * Operator actions that may touch many messages, in steps the progress bar can follow: a purge
 * of more than `PURGE_STEP` pending messages goes as successive `purge?top=<step>` (oldest
 * first), a `dlq resubmit --all` of more than `RESUBMIT_STEP` dead letters as successive
 * resubmits of listed ids. Smaller ones are the single request they always were. Either way the
 * HTTP requests are the same on a terminal and in a pipe; only the bar differs.
 */
import type { ApiClient } from './client.js';
import { progressBar } from './progress.js';

export const PURGE_STEP = 10_000;
export const RESUBMIT_STEP = 1_000;

interface RouteCounts {
  inQueue: number;
  inFlight: number;
}

/**
 * Purges all pending messages of `route`, or the oldest `top`. In steps, "all" ends with the first
 * step that finds fewer than it asked for (so what arrives meanwhile may be purged too, as with
 * the single request).
 */
export async function purgeInSteps(
  api: ApiClient,
  route: string,
  top: number | undefined,
  json: boolean | undefined,
): Promise<{ purged: number }> {
  const base = `/v1/routes/${encodeURIComponent(route)}`;
  const snap = await api.get<RouteCounts>(base);
  const pending = snap.inQueue + snap.inFlight;
  const wanted = top === undefined ? pending : Math.min(top, pending);
  if (wanted <= PURGE_STEP) {
    const query = top === undefined ? '' : `?top=${top}`;
    return api.send<{ purged: number }>('POST', `${base}/purge${query}`);
  }
  const progress = progressBar({ label: `purge ${route}`, unit: 'messages', total: wanted, json });
  let purged = 0;
  try {
    for (;;) {
      const step = top === undefined ? PURGE_STEP : Math.min(PURGE_STEP, top - purged);
      if (step <= 0) break;
      const res = await api.send<{ purged: number }>('POST', `${base}/purge?top=${step}`);
      purged += res.purged;
      progress.set(purged);
      if (res.purged < step) break;
    }
  } catch (err) {
    progress.clear();
    throw withDone(err, `${purged} messages were purged before`);
  }
  progress.setTotal(purged);
  progress.finish();
  return { purged };
}

/** Resubmits every dead letter of `route`: those listed when it starts. */
export async function resubmitAllInSteps(
  api: ApiClient,
  route: string,
  json: boolean | undefined,
): Promise<{ resubmitted: number }> {
  const base = `/v1/routes/${encodeURIComponent(route)}/dead-letters`;
  const send = (body: object) =>
    api.send<{ resubmitted: number }>('POST', `${base}/resubmit`, JSON.stringify(body), {
      'content-type': 'application/json',
    });
  const { deadLetters } = await api.get<{ deadLetters: { id: string }[] }>(base);
  if (deadLetters.length <= RESUBMIT_STEP) return send({ all: true });
  const progress = progressBar({
    label: `resubmit ${route}`,
    unit: 'messages',
    total: deadLetters.length,
    json,
  });
  let resubmitted = 0;
  try {
    for (let i = 0; i < deadLetters.length; i += RESUBMIT_STEP) {
      const ids = deadLetters.slice(i, i + RESUBMIT_STEP).map((d) => d.id);
      resubmitted += (await send({ ids })).resubmitted;
      progress.set(i + ids.length);
    }
  } catch (err) {
    progress.clear();
    throw withDone(err, `${resubmitted} dead letters were resubmitted before`);
  }
  progress.finish();
  return { resubmitted };
}

function withDone(err: unknown, done: string): Error {
  if (err instanceof Error) {
    err.message = `${err.message}; ${done}`;
    return err;
  }
  return new Error(`${String(err)}; ${done}`);
}
