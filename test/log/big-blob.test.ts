/**
 * A 2 GiB payload goes into the log and back out as a stream, written by one child process and
 * read back by another, each measured per phase. WAYSTATION_BIG_BLOB_BYTES overrides the size.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/tmp.js';

const SIZE = Number(process.env.WAYSTATION_BIG_BLOB_BYTES ?? 2 * 1024 ** 3);

describe('large payloads', () => {
  it('streams a 2 GiB payload in and out without holding it in memory', async () => {
    const dir = await tempDir('ws-big-');
    const bundle = join(dir, 'child.mjs');
    await build({
      entryPoints: [fileURLToPath(new URL('./big-blob-child.ts', import.meta.url))],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile: bundle,
      logLevel: 'silent',
    });
    const run = async (...args: string[]): Promise<Record<string, number>> => {
      const { stdout } = await promisify(execFile)(process.execPath, [bundle, ...args]);
      return JSON.parse(stdout);
    };
    const written = await run('write', join(dir, 'log'), String(SIZE));
    const read = await run('read', join(dir, 'log'));
    expect(read.payloadBytes).toBe(SIZE);
    expect(read.bytes).toBe(SIZE);
    expect(read.outCrc).toBe(written.inCrc);
    // The producer alone (fresh 64 KiB buffers, as from a socket) already leaves tens of MB of
    // garbage for V8 to collect; what the log adds on top must stay small and flat.
    expect(written.appendPeakRssMb! - written.producerPeakRssMb!).toBeLessThan(32);
    expect(written.appendPeakRssMb).toBeLessThan(128);
    // Read back in a process of its own, so its peak is the read path's, not the writer's.
    expect(read.readPeakRssMb).toBeLessThan(100);
  }, 120_000);
});
