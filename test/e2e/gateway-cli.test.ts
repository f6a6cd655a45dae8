/** The real `waystation` process and CLI, end to end. */

import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hashToken } from '../../src/ingest/http/auth.js';
import { cli, startCli, writeConfig } from '../support/cli.js';
import { Receiver } from '../support/receiver.js';

const procs: ChildProcess[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill('SIGKILL');
});

async function exitOf(proc: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
}

describe('waystation CLI', () => {
  it('validate: errors name their config path and exit 1; warnings print and exit 0', async () => {
    const bad = await writeConfig({
      targets: { t: { type: 'null' } },
      routes: {
        r: { streams: ['s'], target: 'nope', ordering: 'sideways' },
        'bad name!': { streams: ['s'], target: 't' },
      },
    });
    const res = await cli(['validate', '--config', bad]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/routes\.r\.ordering/);
    expect(res.stderr).toMatch(/routes\.bad name!/);
    const dangling = await writeConfig({
      targets: { t: { type: 'null' } },
      routes: { r: { streams: ['s'], target: 'nope' } },
    });
    expect((await cli(['validate', '--config', dangling])).stderr).toMatch(
      /routes\.r\.target: no target named "nope"/,
    );
    const typo = await writeConfig({ storage: { fsyncc: 'always' } });
    expect((await cli(['validate', '--config', typo])).stderr).toMatch(/storage: unknown key\(s\) "fsyncc"/);
    const warn = await writeConfig({
      storage: { fsync: 'never' },
      targets: { t: { type: 'null' } },
      routes: { r: { streams: ['s'], target: 't' } },
    });
    const ok = await cli(['validate', '--config', warn]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/warning: storage\.fsync/);
    expect(ok.stdout).toMatch(/valid \(1 streams, 1 routes\)/);
  });

  it('refuses to listen beyond loopback without tokens', async () => {
    const open = await writeConfig({ http: { listen: '0.0.0.0:0' } });
    const res = await cli(['validate', '--config', open]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(
      /http\.listen: "0\.0\.0\.0:0" is reachable from other hosts but no auth\.tokens/,
    );
  });

  it('runs the gateway: publish from a file and stdin, operate routes, dead letters, graceful SIGTERM', async () => {
    const receiver = await new Receiver().start();
    receiver.respond = (req, res) => res.writeHead(req.body.toString() === 'poison' ? 422 : 200).end();
    const config = await writeConfig({
      targets: { rx: { type: 'http', url: receiver.url } },
      routes: { r: { streams: ['orders'], target: 'rx' } },
    });
    const { proc, url } = await startCli(['--config', config]);
    procs.push(proc);
    const file = join(config, '..', 'payload.json');
    await writeFile(file, '{"from":"file"}');
    const one = await cli([
      'publish',
      'orders',
      '--file',
      file,
      '--key',
      'k1',
      '--header',
      'x-a=1',
      '--url',
      url,
    ]);
    expect(one.code).toBe(0);
    expect(one.stdout.trim()).toMatch(/^[a-z2-7]{10}-1$/);
    expect((await cli(['publish', 'orders', '--url', url], { input: 'poison' })).code).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.requests[0]!.body.toString()).toBe('{"from":"file"}');
    expect(receiver.requests[0]!.headers).toMatchObject({ 'waystation-key': 'k1', 'x-a': '1' });
    const routes = JSON.parse((await cli(['routes', '--json', '--url', url])).stdout);
    expect(routes[0]).toMatchObject({ name: 'r', forwarded: 1, deadLettered: 1 });
    const dlq = await cli(['dlq', 'list', 'r', '--url', url]);
    expect(dlq.stdout).toMatch(/HTTP 422/);
    expect((await cli(['dlq', 'delete', 'r', '--url', url])).stderr).toMatch(/pass --all/);
    expect((await cli(['dlq', 'delete', 'r', '--all', '--url', url])).stdout).toMatch(
      /1 dead letters deleted/,
    );
    expect((await cli(['route', 'store', 'r', '--url', url])).stdout).toBe('r: held\n');
    await cli(['publish', 'orders', '--url', url], { input: 'held' });
    expect((await cli(['purge', 'r', '--top', '1', '--url', url])).stdout).toBe('r: 1 messages purged\n');
    expect((await cli(['route', 'forward', 'r', '--url', url])).stdout).toBe('r: draining\n');
    expect((await cli(['routes', '--url', 'http://127.0.0.1:1'])).stderr).toMatch(/cannot reach/);
    const status = await cli(['status', '--url', url]);
    expect(status.stdout).toMatch(/ready/);
    proc.kill('SIGTERM');
    expect(await exitOf(proc)).toBe(0);
    await receiver.stop();
  }, 120_000);

  it('enforces tokens: 401 without, 403 without the scope or stream, accepted with the right one', async () => {
    const config = await writeConfig({
      auth: {
        tokens: [
          { name: 'producer', tokenHash: hashToken('p-secret'), scopes: ['publish'], streams: ['orders*'] },
          { name: 'ops', tokenHash: hashToken('o-secret'), scopes: ['admin'] },
        ],
      },
      targets: { t: { type: 'null' } },
      routes: { r: { streams: ['orders', 'other'], target: 't' } },
    });
    const { proc, url } = await startCli(['--config', config]);
    procs.push(proc);
    const post = (stream: string, token?: string) =>
      fetch(`${url}/v1/streams/${stream}/messages`, {
        method: 'POST',
        body: 'x',
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
    expect((await post('orders')).status).toBe(401);
    expect((await post('orders', 'wrong')).status).toBe(401);
    expect((await post('orders', 'p-secret')).status).toBe(202);
    // A stream outside the token's globs answers as one that does not exist (SPEC §8).
    const denied = await post('other', 'p-secret');
    expect(denied.status).toBe(404);
    expect(((await denied.json()) as { error: { code: string } }).error.code).toBe('WS_ERR_STREAM_UNKNOWN');
    expect((await fetch(`${url}/v1/routes`, { headers: { authorization: 'Bearer p-secret' } })).status).toBe(
      403,
    );
    expect((await cli(['routes', '--url', url, '--token', 'o-secret'])).code).toBe(0);
    expect((await cli(['routes', '--url', url], { env: { WAYSTATION_TOKEN: 'p-secret' } })).stderr).toMatch(
      /lacks the "read" scope/,
    );
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    proc.kill('SIGTERM');
    expect(await exitOf(proc)).toBe(0);
  }, 60_000);

  it('hash-token prints a fast keyed hash, hash-password a scrypt one', async () => {
    const res = await cli(['hash-token', 'abc']);
    expect(res.stdout).toMatch(/^tokenHash: hmac-sha256\$/);
    expect(res.stderr).toMatch(/long random token/);
    const fresh = await cli(['hash-token']);
    expect(fresh.stdout).toMatch(/^token: {5}\S{32}\ntokenHash: hmac-sha256\$/);
    expect((await cli(['hash-password', 'pw'])).stdout).toMatch(/^passwordHash: scrypt\$16384\$8\$1\$/);
  });
});
