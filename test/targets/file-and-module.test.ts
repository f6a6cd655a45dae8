import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { TargetModuleError, Waystation } from '../../src/index.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/wait.js';

const silent = pino({ level: 'silent' });
const repo = fileURLToPath(new URL('../..', import.meta.url));

describe('file target', () => {
  it('appends NDJSON lines, fsyncs before acking, and rotates at maxBytes', async () => {
    const dir = await tempDir();
    const ws = await Waystation.open(
      {
        dataDir: join(dir, 'data'),
        targets: { out: { type: 'file', path: join(dir, 'out', 'orders.ndjson'), maxBytes: 600 } },
        routes: { r: { streams: ['orders'], target: 'out' } },
      },
      { logger: silent },
    );
    const { id } = await ws.publish('orders', Buffer.from('{"n":1}'), {
      headers: { 'Content-Type': 'application/json' },
    });
    await ws.messageStatus(id, { waitFor: 'delivered', timeout: '5s' });
    const text = await readFile(join(dir, 'out', 'orders.ndjson'), 'utf8');
    expect(JSON.parse(text.trim())).toMatchObject({ id, stream: 'orders', seq: 1, payload: '{"n":1}' });
    for (let i = 0; i < 10; i++) await ws.publish('orders', Buffer.from(`{"n":${i + 2}}`));
    await until(async () => (await ws.route('r').snapshot()).forwarded === 11, 5000, 'all 11 delivered');
    await ws.close();
    const files = await readdir(join(dir, 'out'));
    expect(files.length).toBeGreaterThan(1);
    let lines = 0;
    for (const f of files) lines += (await readFile(join(dir, 'out', f), 'utf8')).trim().split('\n').length;
    expect(lines).toBe(11);
  });
});

describe('module target', () => {
  it('loads the documented example module and delivers through it', async () => {
    const dir = await tempDir();
    const ws = await Waystation.open(
      {
        dataDir: 'data',
        targets: {
          shout: {
            type: 'module',
            path: join(repo, 'examples/module-target/uppercase-file-target.mjs'),
            options: { file: 'out/shout.txt', rejectEmpty: true },
          },
        },
        routes: { r: { streams: ['s'], target: 'shout' } },
      },
      { logger: silent, baseDir: dir },
    );
    const { id } = await ws.publish('s', Buffer.from('hello'));
    await ws.publish('s', Buffer.alloc(0));
    await ws.messageStatus(id, { waitFor: 'delivered', timeout: '5s' });
    await until(() => ws.route('r').deadLetters.list().length === 1, 5000, 'the dead letter');
    expect(await readFile(join(dir, 'out/shout.txt'), 'utf8')).toBe(`${id} HELLO\n`);
    expect(ws.route('r').deadLetters.list()[0]).toMatchObject({
      reason: 'error',
      lastError: 'empty payloads are not accepted',
    });
    await ws.close();
  });

  it('says what is wrong with a module that exports no factory', async () => {
    const dir = await tempDir();
    const bad = join(dir, 'bad.mjs');
    await import('node:fs/promises').then((fs) => fs.writeFile(bad, 'export const nothing = 1;\n'));
    const err = await Waystation.open(
      {
        dataDir: join(dir, 'data'),
        targets: { x: { type: 'module', path: bad } },
        routes: { r: { streams: ['s'], target: 'x' } },
      },
      { logger: silent },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TargetModuleError);
    expect((err as Error).message).toMatch(/targets\.x: module .*bad\.mjs exports no createTarget/);
  });
});
