/**
 * Bounds on request bodies while they arrive (issue 15): a body that goes silent for
 * `http.bodyTimeout` ends with BodyTimeoutError, the bytes being received at once are bounded by
 * `http.maxStagingBytes` (StagingFullError), and a client that hangs up mid-body surfaces as
 * ClientAbortedError — never as a storage or internal error. Whatever was staged for the body is
 * removed by the log when its payload stream fails, so a refused upload stores nothing. A body
 * with a Content-Encoding is decoded behind the guard (decode.ts): the budget then counts the
 * decoded bytes, and decoding progress counts as activity for the idle timer.
 */
import type { IncomingMessage } from 'node:http';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { BadRequestError, BodyTimeoutError, ClientAbortedError, StagingFullError } from '../../errors.js';
import { type ContentCoding, decodeBody } from './decode.js';

/** Bytes of request bodies being received at once, against a limit. */
export class StagingBudget {
  private used = 0;

  constructor(readonly limitBytes: number) {}

  get usedBytes(): number {
    return this.used;
  }

  /** Takes `bytes` or throws StagingFullError (nothing taken then). */
  take(bytes: number): void {
    if (bytes <= 0) return;
    if (this.used + bytes > this.limitBytes) throw new StagingFullError(this.limitBytes);
    this.used += bytes;
  }

  give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}

/**
 * Fires `onIdle` once nothing happened for `timeoutMs`: one timer per body, re-armed for the
 * remainder when it fires early, rather than a timer reset on every chunk.
 */
function idleTimer(timeoutMs: number, onIdle: () => void): { touch(): void; stop(): void } {
  let last = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const arm = (ms: number) => {
    timer = setTimeout(() => {
      const idle = Date.now() - last;
      if (idle >= timeoutMs) onIdle();
      else arm(timeoutMs - idle);
    }, ms);
    timer.unref();
  };
  arm(timeoutMs);
  return {
    touch: () => {
      last = Date.now();
    },
    stop: () => clearTimeout(timer),
  };
}

export type BodyRefusalReason = 'client-aborted' | 'body-timeout' | 'staging-full';

export interface BodyLimits {
  budget: StagingBudget;
  timeoutMs: number;
  /**
   * Called once for each body refused here, where it is seen: a hung-up client gets no answer,
   * so the error handler may never run for it.
   */
  refused: (reason: BodyRefusalReason, err: Error) => void;
}

function refuse<E extends Error>(limits: BodyLimits, reason: BodyRefusalReason, err: E): E {
  limits.refused(reason, err);
  return err;
}

function take(limits: BodyLimits, bytes: number): void {
  try {
    limits.budget.take(bytes);
  } catch (err) {
    throw refuse(limits, 'staging-full', err as Error);
  }
}

/** Whether the client went away before the request was complete. */
function aborted(source: IncomingMessage): boolean {
  return source.destroyed && !source.complete;
}

/** How guardBody decodes a body sent with a Content-Encoding (decode.ts). */
export interface BodyDecoding {
  codings: readonly ContentCoding[];
  /** Decoded bytes allowed (http.maxBodyBytes or http.maxBatchBytes). */
  limitBytes: number;
  what: string;
}

/**
 * The body as a stream that fails with a typed error on silence, on the staging bound or on a
 * client hang-up. `declared` (Content-Length) is taken from the budget at once; without it,
 * bytes are taken as they arrive. With `decoding` the body is decoded as it arrives and the
 * budget is charged with the decoded bytes (what is held or staged) instead; silence and
 * hang-ups are still watched on the encoded bytes.
 */
export function guardBody(
  source: IncomingMessage,
  declared: number | undefined,
  limits: BodyLimits,
  decoding?: BodyDecoding,
): Readable {
  const { budget } = limits;
  let taken = 0;
  const upFront = decoding ? undefined : declared;
  if (upFront !== undefined) {
    take(limits, upFront);
    taken = upFront;
  }
  const chargeChunks = upFront === undefined && !decoding;
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    timer.stop();
    budget.give(taken);
  };
  const guarded = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      timer.touch();
      if (chargeChunks) {
        try {
          take(limits, chunk.byteLength);
        } catch (err) {
          return done(err as Error);
        }
        taken += chunk.byteLength;
      }
      done(null, chunk);
    },
  });
  const timer = idleTimer(limits.timeoutMs, () =>
    guarded.destroy(refuse(limits, 'body-timeout', new BodyTimeoutError(limits.timeoutMs))),
  );
  const abort = () => {
    if (!guarded.destroyed) guarded.destroy(refuse(limits, 'client-aborted', new ClientAbortedError()));
  };
  source.on('error', abort);
  source.on('close', () => {
    if (aborted(source)) abort();
  });
  // The reader sees the error through its iterator; this listener keeps a destroy that lands
  // between reads from becoming an uncaught 'error' event.
  guarded.on('error', () => {});
  source.pipe(guarded);
  // The encoded body complete (or failed): nothing more to wait for on the socket.
  guarded.on('close', () => timer.stop());
  guarded.on('end', () => timer.stop());
  const body: Readable = decoding
    ? decodeBody(guarded, decoding.codings, {
        limitBytes: decoding.limitBytes,
        what: decoding.what,
        charge: (bytes) => {
          // Decoding under way is progress: a body is silent only when neither encoded bytes
          // arrive nor decoded ones come out (a small body can take long to inflate and store).
          timer.touch();
          take(limits, bytes);
          taken += bytes;
        },
      })
    : guarded;
  if (body !== guarded) body.on('error', () => {});
  body.on('close', release);
  body.on('end', release);
  return body;
}

/**
 * Reads a body of a known, small length into one buffer (the log's fast, ordered path), with
 * the same idle timeout and hang-up handling as guardBody but no stream in between.
 */
export function readSmallBody(source: IncomingMessage, length: number, limits: BodyLimits): Promise<Buffer> {
  take(limits, length);
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let seen = 0;
    let settled = false;
    const finish = (err: Error | undefined, value?: Buffer) => {
      if (settled) return;
      settled = true;
      timer.stop();
      limits.budget.give(length);
      source.off('data', onData);
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = idleTimer(limits.timeoutMs, () =>
      finish(refuse(limits, 'body-timeout', new BodyTimeoutError(limits.timeoutMs))),
    );
    const onData = (chunk: Buffer) => {
      timer.touch();
      seen += chunk.byteLength;
      if (seen > length)
        return finish(new BadRequestError(`The body is longer than its Content-Length (${length}).`));
      chunks.push(chunk);
    };
    source.on('data', onData);
    source.once('end', () =>
      finish(undefined, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, seen)),
    );
    const abort = () => {
      if (!settled) finish(refuse(limits, 'client-aborted', new ClientAbortedError()));
    };
    source.once('error', abort);
    source.once('close', () => {
      if (aborted(source)) abort();
    });
  });
}
