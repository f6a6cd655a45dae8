import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Waystation } from '../../src/index.js';
import { ScriptedTarget } from '../support/scripted-target.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/wait.js';

describe('a damaged record in the backlog', () => {
  it('is dead-lettered as damaged, and the route delivers the rest and drains', async () => {
    const dir = await tempDir();
    const target = new ScriptedTarget();
    const config = {
      dataDir: dir,
      targets: { t: { type: 'null' as const } },
      routes: { r: { streams: ['s'], target: 't' } },
    };
    const options = { logger: pino({ level: 'silent' }), targets: { t: target } };
    let ws = await Waystation.open(config, options);
    ws.route('r').store();
    for (const text of ['one', 'two-is-damaged', 'three']) await ws.publish('s', Buffer.from(text));
    await ws.close();
    const streamDir = join(dir, 'streams', 's');
    const seg = join(streamDir, (await readdir(streamDir)).find((f) => f.endsWith('.seg'))!);
    const bytes = await readFile(seg);
    const at = bytes.indexOf('two-is-damaged');
    bytes[at] = bytes[at]! ^ 0xff;
    await writeFile(seg, bytes);

    ws = await Waystation.open(config, options);
    ws.route('r').forward();
    await until(
      async () => (await ws.route('r').snapshot()).state === 'forwarding',
      5000,
      'the drain to finish',
    );
    expect(target.texts()).toEqual(['one', 'three']);
    const [letter] = ws.route('r').deadLetters.list();
    expect(letter).toMatchObject({
      seq: 2,
      reason: 'damaged',
      lastError: expect.stringMatching(/damaged on disk/),
    });
    expect(await ws.route('r').snapshot()).toMatchObject({ forwarded: 2, deadLettered: 1, inQueue: 0 });
    await ws.close();
  });
});
