/**
 * `waystation import --stream S FILE`: publishes the messages of an export file (any of
 * `waystation export`'s or `dlq export`'s, gzip or not: told by its first bytes) to stream S,
 * durably and idempotently.
 *
 * The file is read line by line, never whole; lines go out in batches of up to `batchMessages`
 * lines / `batchBytes` bytes to `POST /v1/streams/S/messages:batch`, one batch at a time so the
 * file's order is the stream's order. Each line carries the exported message's id as its own
 * `idempotencyKey`, its key, headers and `expiresAt`: a message whose id was imported into S
 * within storage.dedupWindow is not stored again (the batch endpoint answers its first id), so a
 * re-run, or a run after a failure part-way, stores nothing twice. Beyond the window a re-run
 * stores the messages again, under new ids. A message whose expiresAt has passed is skipped and
 * counted, by the CLI's clock and again by the gateway's.
 */
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ApiClient, ApiError } from './client.js';
import { progressBar } from './progress.js';

export interface ImportRequest {
  url: string;
  token?: string | undefined;
  stream: string;
  file: string;
  json?: boolean | undefined;
  /** Lines per batch request. Default 500. */
  batchMessages?: number;
  /** Bytes per batch request (below the gateway's http.maxBatchBytes, 64 MiB by default). Default 4 MiB. */
  batchBytes?: number;
  /** A longer line is refused. Default 64 MiB. */
  maxLineBytes?: number;
  /** ms clock for the expiry check; default Date.now. */
  now?: () => number;
}

export interface ImportResult {
  stream: string;
  /** Lines read from the file. */
  lines: number;
  /** Messages stored now. */
  imported: number;
  /** Messages already imported (their id within storage.dedupWindow): not stored again. */
  duplicates: number;
  /** Messages whose TTL had run out: not stored. */
  expired: number;
}

/** Thrown for a file that is not an export; printed as one line. */
export class ImportFileError extends Error {}

interface ExportLine {
  id?: unknown;
  key?: unknown;
  headers?: unknown;
  expiresAt?: unknown;
  payload?: unknown;
  payloadBase64?: unknown;
}

interface BatchAnswer {
  ids: (string | null)[];
  stored?: number;
  duplicates?: number;
  expired?: number;
}

export async function runImport(req: ImportRequest): Promise<ImportResult> {
  const batchMessages = req.batchMessages ?? 500;
  const batchBytes = req.batchBytes ?? 4 * 1024 * 1024;
  const maxLineBytes = req.maxLineBytes ?? 64 * 1024 * 1024;
  const now = req.now ?? Date.now;
  const api = new ApiClient(req.url, req.token);
  const size = (await stat(req.file)).size;
  const gzip = await isGzip(req.file);
  const progress = progressBar({ label: `import ${req.stream}`, unit: 'bytes', total: size, json: req.json });
  let read = 0;
  const file = createReadStream(req.file, { highWaterMark: 256 * 1024 });
  const raw = Readable.from(
    (async function* () {
      for await (const chunk of file as AsyncIterable<Buffer>) {
        read += chunk.byteLength;
        progress.set(read);
        yield chunk;
      }
    })(),
    { objectMode: false },
  );
  const source = gzip ? raw.pipe(createGunzip()) : raw;
  if (gzip) raw.on('error', (err) => source.destroy(err));

  const result: ImportResult = { stream: req.stream, lines: 0, imported: 0, duplicates: 0, expired: 0 };
  let batch: string[] = [];
  let batchSize = 0;
  let firstLineOfBatch = 1;
  let lastLineOfBatch = 0;
  const path = `/v1/streams/${encodeURIComponent(req.stream)}/messages:batch`;

  const flush = async () => {
    if (batch.length === 0) return;
    let answer: BatchAnswer;
    try {
      answer = await api.send<BatchAnswer>('POST', path, batch.join(''), {
        'content-type': 'application/x-ndjson',
      });
    } catch (err) {
      const done = firstLineOfBatch - 1;
      const where =
        done === 0
          ? 'nothing of the file was imported'
          : `the file's first ${done} lines are imported (some of lines ${firstLineOfBatch}-${lastLineOfBatch} may be too)`;
      const what = err instanceof Error ? err.message : String(err);
      throw new ApiError(
        `import into ${req.stream} stopped: ${what}; ${where}. Run the same import again to go on: what is imported is not stored twice within storage.dedupWindow`,
        err instanceof ApiError ? err.status : 0,
        err instanceof ApiError ? err.code : undefined,
      );
    }
    result.imported += answer.stored ?? answer.ids.filter((id) => id !== null).length;
    result.duplicates += answer.duplicates ?? 0;
    result.expired += answer.expired ?? 0;
    batch = [];
    batchSize = 0;
  };

  try {
    for await (const line of splitLines(source, maxLineBytes)) {
      result.lines++;
      if (line.trim() === '') continue;
      const out = toBatchLine(line, result.lines, now());
      if (out === undefined) {
        result.expired++;
        continue;
      }
      if (batch.length > 0 && (batch.length >= batchMessages || batchSize + out.length > batchBytes)) {
        await flush();
      }
      if (batch.length === 0) firstLineOfBatch = result.lines;
      batch.push(out);
      lastLineOfBatch = result.lines;
      batchSize += out.length;
    }
    await flush();
  } catch (err) {
    progress.clear();
    file.destroy();
    if (err instanceof Error && 'code' in err && err.code === 'Z_DATA_ERROR')
      throw new ImportFileError(`${req.file} is not a valid gzip file: ${err.message}`);
    throw err;
  }
  progress.set(size);
  progress.finish();
  return result;
}

async function isGzip(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await fh.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/**
 * One exported line as a batch line with its id as idempotencyKey; undefined when it has
 * expired. Fields are checked here so that a broken file fails naming its line, before anything
 * of that line's batch is sent.
 */
export function toBatchLine(text: string, lineNumber: number, now: number): string | undefined {
  const at = `line ${lineNumber}`;
  let obj: ExportLine;
  try {
    obj = JSON.parse(text) as ExportLine;
  } catch {
    throw new ImportFileError(`${at} is not JSON: is this a file written by waystation export?`);
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj))
    throw new ImportFileError(`${at} is not a JSON object: is this a file written by waystation export?`);
  if (typeof obj.id !== 'string' || obj.id === '')
    throw new ImportFileError(`${at} has no "id": is this a file written by waystation export?`);
  const hasText = typeof obj.payload === 'string';
  const hasBase64 = typeof obj.payloadBase64 === 'string';
  if (hasText === hasBase64)
    throw new ImportFileError(`${at} (message ${obj.id}) needs exactly one of "payload" or "payloadBase64".`);
  if (obj.key !== undefined && obj.key !== null && typeof obj.key !== 'string')
    throw new ImportFileError(`${at} (message ${obj.id}): "key" must be a string or null.`);
  const headers = obj.headers ?? {};
  if (
    typeof headers !== 'object' ||
    headers === null ||
    Array.isArray(headers) ||
    Object.values(headers).some((v) => typeof v !== 'string')
  )
    throw new ImportFileError(`${at} (message ${obj.id}): "headers" must be an object of strings.`);
  const { expiresAt } = obj;
  if (
    expiresAt !== undefined &&
    expiresAt !== null &&
    (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt))
  )
    throw new ImportFileError(`${at} (message ${obj.id}): "expiresAt" must be ms since the epoch or null.`);
  if (typeof expiresAt === 'number' && expiresAt <= now) return undefined;
  const out: Record<string, unknown> = hasText
    ? { payload: obj.payload }
    : { payloadBase64: obj.payloadBase64 };
  if (typeof obj.key === 'string') out.key = obj.key;
  out.headers = headers;
  if (typeof expiresAt === 'number') out.expiresAt = expiresAt;
  out.idempotencyKey = obj.id;
  return `${JSON.stringify(out)}\n`;
}

/** The stream's lines (UTF-8, without the newline), each at most `maxLineBytes`. */
export async function* splitLines(
  source: AsyncIterable<Buffer>,
  maxLineBytes: number,
): AsyncGenerator<string> {
  let pieces: Buffer[] = [];
  let pending = 0;
  let lineNumber = 1;
  for await (const chunk of source) {
    let start = 0;
    let at = chunk.indexOf(0x0a);
    while (at !== -1) {
      const part = chunk.subarray(start, at);
      if (pending + part.byteLength > maxLineBytes) throw tooLong(lineNumber, maxLineBytes);
      yield (pieces.length === 0 ? part : Buffer.concat([...pieces, part])).toString('utf8');
      pieces = [];
      pending = 0;
      lineNumber++;
      start = at + 1;
      at = chunk.indexOf(0x0a, start);
    }
    if (start < chunk.byteLength) {
      const rest = chunk.subarray(start);
      pending += rest.byteLength;
      if (pending > maxLineBytes) throw tooLong(lineNumber, maxLineBytes);
      pieces.push(Buffer.from(rest));
    }
  }
  if (pending > 0) yield Buffer.concat(pieces).toString('utf8');
}

function tooLong(lineNumber: number, max: number): ImportFileError {
  return new ImportFileError(
    `line ${lineNumber} is longer than ${max} bytes; import takes messages up to that size (a larger payload: waystation publish --file)`,
  );
}
