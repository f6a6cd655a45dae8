/**
 * A 2 GiB payload goes into the log and back out as a stream, in a child process whose memory
 * is measured per phase. WAYSTATION_BIG_BLOB_BYTES overrides the size.
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
    const { stdout } = await promisify(execFile)(process.execPath, [bundle, join(dir, 'log'), String(SIZE)]);
    const report = JSON.parse(stdout) as Record<string, number>;
    expect(report.payloadBytes).toBe(SIZE);
    expect(report.bytes).toBe(SIZE);
    expect(report.outCrc).toBe(report.inCrc);
    // The producer alone (fresh 256 KiB buffers, as from a socket) already leaves tens of MB of
    // garbage for V8 to collect; what the log adds on top must stay small and flat.
    expect(report.appendPeakRssMb! - report.producerPeakRssMb!).toBeLessThan(32);
    expect(report.readPeakRssMb).toBeLessThan(100);
    expect(report.appendPeakRssMb).toBeLessThan(128);
  }, 120_000);
});
