import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { permanentError } from '../../src/delivery/target.js';
import type { Gateway } from '../../src/gateway.js';
import { hashToken } from '../../src/ingest/http/auth.js';
import type { StoredMessage } from '../../src/store/message.js';
import { cli } from '../support/cli.js';
import { startGateway } from '../support/gateway.js';
import { ScriptedTarget } from '../support/scripted-target.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/wait.js';

let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

interface Line {
  id: string;
  seq: number;
  key: string | null;
  headers: Record<string, string>;
  timestamp: number;
  expiresAt: number | null;
  payload?: string;
  payloadBase64?: string;
}

const parse = (text: string): Line[] =>
  text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line);

const bytesOf = (l: Line) =>
  l.payload !== undefined ? Buffer.from(l.payload) : Buffer.from(l.payloadBase64!, 'base64');

async function payloadOf(m: StoredMessage): Promise<Buffer> {
  if (m.payload) return m.payload;
  const chunks: Buffer[] = [];
  for await (const c of gw!.ws.openPayload(m)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Every message a stream holds (reads are bounded: page through). */
async function readAll(stream: string): Promise<StoredMessage[]> {
  const all: StoredMessage[] = [];
  for (;;) {
    const page = await gw!.ws.readMessages(stream, { fromSeq: (all.at(-1)?.seq ?? 0) + 1, maxMessages: 500 });
    if (page.length === 0) return all;
    all.push(...page);
  }
}

/** What import must carry over: key, headers, expiry and payload bytes, in order. */
async function contentOf(stream: string) {
  const all = await readAll(stream);
  return Promise.all(
    all.map(async (m) => ({
      key: m.key,
      headers: m.headers,
      expiresAt: m.expiresAt,
      payload: (await payloadOf(m)).toString('hex'),
    })),
  );
}

// No route reads src in the export/import tests: its history stays (a delivered message is collected).
const config = {
  storage: { blobThreshold: '8KiB' },
  streams: { src: {}, dst: {}, dst2: {} },
};
const routed = {
  ...config,
  targets: { t: { type: 'null' as const } },
  routes: { r: { streams: ['src'], target: 't', probeInterval: '100ms' } },
};

async function publishSamples(): Promise<{ expiredSeq: number; count: number }> {
  const ws = gw!.ws;
  await ws.publish('src', '{"order":1}', {
    key: 'cust-1',
    headers: { 'content-type': 'application/json', 'x-trace': 'a=b; c' },
    ttl: '1h',
  });
  await ws.publish('src', Buffer.from([0, 1, 2, 0xff, 0xfe, 0xc3, 0x28]), { key: 'bin' });
  await ws.publish('src', randomBytes(64 * 1024), { headers: { 'x-big': 'side file' } });
  const gone = await ws.publish('src', 'short-lived', { ttl: 300 });
  await ws.publish('src', 'héllo wörld ✓', { headers: { 'content-type': 'text/plain; charset=utf-8' } });
  await ws.publishBatch(
    'src',
    Array.from({ length: 1200 }, (_, i) => ({ payload: `bulk ${i}`, key: `k${i % 7}` })),
  );
  await new Promise((r) => setTimeout(r, 350)); // the short-lived one expires
  return { expiredSeq: gone.seq, count: 1205 };
}

describe('waystation export / import', () => {
  it('exports every message faithfully, imports them into another stream, and a re-run stores nothing twice', async () => {
    ({ gw } = await startGateway(config));
    const { expiredSeq, count } = await publishSamples();
    const dir = await tempDir();
    const file = join(dir, 'src.ndjson');
    const url = gw.url;

    const exported = await cli(['export', '--stream', 'src', '--out', file, '--url', url, '--json']);
    expect(exported.stderr).toBe('');
    expect(exported.code).toBe(0);
    expect(JSON.parse(exported.stdout)).toMatchObject({ exported: count, file, gzip: false });
    const lines = parse(await readFile(file, 'utf8'));
    const stored = await readAll('src');
    expect(lines).toHaveLength(count);
    for (const [i, line] of lines.entries()) {
      const m = stored[i]!;
      expect(line).toMatchObject({
        id: m.id,
        seq: m.seq,
        key: m.key ?? null,
        headers: m.headers,
        timestamp: m.timestamp,
        expiresAt: m.expiresAt ?? null,
      });
      expect(bytesOf(line).equals(await payloadOf(m))).toBe(true);
    }
    expect(lines[4]!.payload).toBe('héllo wörld ✓');

    const imported = await cli(['import', '--stream', 'dst', file, '--url', url, '--json']);
    expect(imported.stderr).toBe('');
    expect(JSON.parse(imported.stdout)).toEqual({
      stream: 'dst',
      lines: count,
      imported: count - 1,
      duplicates: 0,
      expired: 1,
    });
    const expected = (await contentOf('src')).filter((_, i) => i + 1 !== expiredSeq);
    const got = await contentOf('dst');
    // The remaining TTL is carried: the expiry is the original's within a few ms.
    for (const [i, m] of got.entries()) {
      if (m.expiresAt === undefined) expect(expected[i]!.expiresAt).toBeUndefined();
      else expect(Math.abs(m.expiresAt - expected[i]!.expiresAt!)).toBeLessThan(25);
    }
    const withoutExpiry = (all: Awaited<ReturnType<typeof contentOf>>) =>
      all.map(({ expiresAt, ...rest }) => ({ ...rest, expires: expiresAt !== undefined }));
    expect(withoutExpiry(got)).toEqual(withoutExpiry(expected));

    const again = await cli(['import', '--stream', 'dst', file, '--url', url]);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`imported 0 messages into dst (${count - 1} already there, 1 expired)\n`);
    expect(gw.ws.streamBounds('dst').lastSeq).toBe(count - 1);
  });

  it('writes gzip for a .gz file and imports it back, told by its first bytes', async () => {
    ({ gw } = await startGateway(config));
    const { count } = await publishSamples();
    const dir = await tempDir();
    const gz = join(dir, 'src.ndjson.gz');
    const res = await cli(['export', '--stream', 'src', '--from-seq', '2', '--out', gz, '--url', gw.url]);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(`exported ${count - 1} messages (stream src) to ${gz}\n`);
    const raw = await readFile(gz);
    expect([raw[0], raw[1]]).toEqual([0x1f, 0x8b]);
    expect(parse(gunzipSync(raw).toString('utf8'))[0]!.seq).toBe(2);
    const imported = await cli(['import', '--stream', 'dst2', gz, '--url', gw.url, '--json']);
    expect(JSON.parse(imported.stdout)).toMatchObject({ imported: count - 2, expired: 1 });
    const src = (await contentOf('src'))
      .slice(1)
      .filter((m) => m.payload !== Buffer.from('short-lived').toString('hex'));
    expect(await contentOf('dst2')).toEqual(src);
    // Nothing but the file is left in the directory (no partial file).
    expect(await readdir(dir)).toEqual(['src.ndjson.gz']);
  });

  it("exports a route's pending messages and its dead letters", async () => {
    const target = new ScriptedTarget();
    target.behaviour = (d) => (d.key === 'bad' ? permanentError('no') : { kind: 'ack' });
    ({ gw } = await startGateway(routed, { t: target }));
    await gw.ws.publish('src', 'ok');
    await gw.ws.publish('src', 'dead', { key: 'bad' });
    await until(() => gw!.ws.route('r').deadLetters.list().length === 1, 5000, 'a dead letter');
    await cli(['route', 'store', 'r', '--url', gw.url]);
    await gw.ws.publish('src', 'held 1');
    await gw.ws.publish('src', 'held 2');
    const dir = await tempDir();
    const pending = join(dir, 'pending.ndjson');
    const p = await cli(['export', '--route', 'r', '--pending', '--out', pending, '--url', gw.url]);
    expect(p.stdout).toBe(`exported 2 messages (pending messages of route r) to ${pending}\n`);
    expect(parse(await readFile(pending, 'utf8')).map((l) => bytesOf(l).toString())).toEqual([
      'held 1',
      'held 2',
    ]);
    const dead = join(dir, 'dead.ndjson');
    const d = await cli(['dlq', 'export', 'r', '--out', dead, '--url', gw.url]);
    expect(d.stdout).toBe(`exported 1 messages (dead letters of route r) to ${dead}\n`);
    const [letter] = parse(await readFile(dead, 'utf8'));
    expect(bytesOf(letter!).toString()).toBe('dead');
    expect(letter).toMatchObject({
      key: 'bad',
      deadLetter: { route: 'r', reason: 'error', lastError: 'no' },
    });
    // A dead-letter export imports like any other.
    const i = await cli(['import', '--stream', 'dst', dead, '--url', gw.url, '--json']);
    expect(JSON.parse(i.stdout)).toMatchObject({ imported: 1 });
    const noPending = await cli(['export', '--route', 'r', '--out', pending, '--url', gw.url]);
    expect(noPending.code).toBe(1);
    expect(noPending.stderr).toMatch(/^waystation: a route exports its pending messages: add --pending/);
  });

  it('fails in one line and leaves no file for an unknown stream, a stream out of reach or a file that is no export', async () => {
    const secret = 's'.repeat(32);
    ({ gw } = await startGateway({
      ...config,
      auth: {
        tokens: [{ name: 'a', tokenHash: hashToken(secret), scopes: ['read', 'publish'], streams: ['d*'] }],
      },
    }));
    await gw.ws.publish('src', 'not for token a');
    const dir = await tempDir();
    const out = join(dir, 'x.ndjson');
    const args = ['--url', gw.url, '--token', secret];
    for (const stream of ['nope', 'src']) {
      const res = await cli(['export', '--stream', stream, '--out', out, ...args]);
      expect(res.code).toBe(1);
      expect(res.stderr.split('\n')).toHaveLength(2);
      expect(res.stderr).toMatch(/^waystation: .*\(WS_ERR_STREAM_UNKNOWN\)\n$/);
    }
    expect(await readdir(dir)).toEqual([]);
    await writeFile(join(dir, 'junk.ndjson'), '{"id":"x-1","payload":"ok"}\nthis is not json\n');
    const junk = await cli(['import', '--stream', 'dst', join(dir, 'junk.ndjson'), ...args]);
    expect(junk.code).toBe(1);
    expect(junk.stderr).toBe(
      'waystation: line 2 is not JSON: is this a file written by waystation export?\n',
    );
    expect(gw.ws.streamBounds('dst').lastSeq).toBe(0);
    const refused = await cli(['import', '--stream', 'src', join(dir, 'junk.ndjson'), ...args]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^waystation: .*line 2 is not JSON/);
  });
});

describe('purge and dlq resubmit --all in steps', () => {
  it('purges a large backlog in steps and resubmits many dead letters, piped: no progress output', async () => {
    const target = new ScriptedTarget();
    target.behaviour = (d) => (d.key === 'bad' ? permanentError('no') : { kind: 'ack' });
    ({ gw } = await startGateway(
      { ...routed, routes: { r: { streams: ['src'], target: 't', batch: { maxMessages: 500 } } } },
      { t: target },
    ));
    await gw.ws.publishBatch(
      'src',
      Array.from({ length: 1500 }, (_, i) => ({ payload: `d${i}`, key: 'bad' })),
    );
    await until(() => gw!.ws.route('r').deadLetters.list().length === 1500, 20_000, '1500 dead letters');
    await cli(['route', 'store', 'r', '--url', gw.url]);
    target.behaviour = 'up';
    const resubmit = await cli(['dlq', 'resubmit', 'r', '--all', '--url', gw.url]);
    expect(resubmit.stderr).toBe('');
    expect(resubmit.stdout).toBe('r: 1500 dead letters resubmitted\n');
    for (let i = 0; i < 25_000; i += 5000)
      await gw.ws.publishBatch(
        'src',
        Array.from({ length: 5000 }, (_, j) => ({ payload: `p${i + j}` })),
      );
    const purge = await cli(['purge', 'r', '--top', '24000', '--url', gw.url]);
    expect(purge.stderr).toBe('');
    expect(purge.stdout).toBe('r: 24000 messages purged\n');
    const rest = await cli(['purge', 'r', '--url', gw.url, '--json']);
    expect(JSON.parse(rest.stdout)).toEqual({ purged: 2500 });
  });
});
