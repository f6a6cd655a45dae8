/**
 * `waystation export` and `waystation dlq export`: a streaming GET of one of the gateway's export
 * endpoints (src/admin/export-routes.ts) written to a file as it arrives, gzip-compressed when the
 * file name ends in `.gz`. Memory is bounded by the stream's buffers: the response is piped to the
 * file with backpressure, never collected. The file appears under its name only once complete
 * and fsynced (written as `<file>.partial-<pid>` first, then renamed); a failed export leaves no
 * file behind. `--out -` writes to stdout.
 */
import { createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { request } from 'undici';
import { ApiError } from './client.js';
import { type Progress, progressBar } from './progress.js';

export interface ExportRequest {
  url: string;
  token?: string | undefined;
  /** The export endpoint, e.g. /v1/streams/orders/export?fromSeq=10. */
  path: string;
  /** The file to write, or "-" for stdout. */
  out: string;
  /** Shown on the progress bar. */
  label: string;
  json?: boolean | undefined;
}

export interface ExportResult {
  exported: number;
  /** Bytes written (compressed, with .gz). */
  bytes: number;
  file: string;
  gzip: boolean;
}

/** The response header with the number of lines to expect (export-routes.ts). */
const TOTAL_HEADER = 'waystation-export-total';

export async function runExport(req: ExportRequest): Promise<ExportResult> {
  const headers: Record<string, string> = { accept: 'application/x-ndjson' };
  if (req.token) headers.authorization = `Bearer ${req.token}`;
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(new URL(req.path, req.url), { method: 'GET', headers });
  } catch (err) {
    throw new ApiError(`cannot reach ${req.url}: ${(err as Error).message}`, 0, undefined);
  }
  if (res.statusCode >= 400) throw apiErrorOf(res.statusCode, await res.body.text());
  const totalHeader = res.headers[TOTAL_HEADER];
  const total =
    typeof totalHeader === 'string' && /^\d+$/.test(totalHeader) ? Number(totalHeader) : undefined;
  const gzip = req.out.endsWith('.gz');
  const toStdout = req.out === '-';
  const progress = progressBar({ label: req.label, unit: 'messages', total, json: req.json });
  const counter = countLines(progress);
  const sized = countBytes();
  const temp = `${req.out}.partial-${process.pid}`;
  try {
    const sink: Writable = toStdout ? process.stdout : createWriteStream(temp, { flags: 'wx' });
    // The body is read by iteration: undici's body piped into a slower writer pauses and resumes
    // its parser so often that a 60 MB export took minutes instead of seconds.
    const body = res.body as AsyncIterable<Buffer>;
    const source = Readable.from(
      (async function* () {
        for await (const chunk of body) {
          counter.count(chunk);
          yield chunk;
        }
      })(),
      { objectMode: false },
    );
    const options = { end: !toStdout };
    if (gzip) await pipeline(source, createGzip(), sized.stream, sink, options);
    else await pipeline(source, sized.stream, sink, options);
    if (!toStdout) {
      const fh = await open(temp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(temp, req.out);
    }
  } catch (err) {
    progress.clear();
    res.body.destroy();
    if (!toStdout) await rm(temp, { force: true });
    throw new ApiError(
      `export to ${req.out} failed after ${counter.lines} messages: ${(err as Error).message}; nothing was written to ${req.out}`,
      0,
      undefined,
    );
  }
  progress.setTotal(counter.lines);
  progress.set(counter.lines);
  progress.finish();
  return { exported: counter.lines, bytes: sized.bytes(), file: req.out, gzip };
}

/** The same error line as ApiClient gives for an error answer. */
export function apiErrorOf(status: number, text: string): ApiError {
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
  const detail = error?.message ?? (text.slice(0, 200) || `HTTP ${status}`);
  return new ApiError(`${detail}${error?.code ? ` (${error.code})` : ''}`, status, error?.code);
}

/** Counts newlines (one per exported message) into the progress bar. */
function countLines(progress: Progress): { count: (chunk: Buffer) => void; readonly lines: number } {
  const state = { lines: 0 };
  return {
    count(chunk: Buffer) {
      let at = chunk.indexOf(0x0a);
      let n = 0;
      while (at !== -1) {
        n++;
        at = chunk.indexOf(0x0a, at + 1);
      }
      if (n > 0) {
        state.lines += n;
        progress.set(state.lines);
      }
    },
    get lines() {
      return state.lines;
    },
  };
}

function countBytes(): { stream: Transform; bytes: () => number } {
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.byteLength;
      done(null, chunk);
    },
  });
  return { stream, bytes: () => bytes };
}
