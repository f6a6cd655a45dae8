import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { UiSnapshot as ServerSnapshot } from '../../src/admin/ui-events.js';
import { uiEventsRoutes } from '../../src/admin/ui-events.js';
import {
  CSRF_HEADER,
  SESSION_COOKIE,
  type SessionInfo as ServerSession,
  UiSessions,
} from '../../src/admin/ui-session.js';
import type { Gateway } from '../../src/gateway.js';
import { hashToken, OPEN_ACCESS } from '../../src/ingest/http/auth.js';
import type { SessionInfo as PageSession, UiSnapshot as PageSnapshot } from '../../ui/src/types.js';
import { startGateway } from '../support/gateway.js';

it("keeps the page's copies of the wire shapes (ui/src/types.ts) able to take what the gateway sends", () => {
  // A compile-time check: the typecheck fails when the gateway's shapes drift from the page's.
  const snapshot: (s: ServerSnapshot) => PageSnapshot = (s) => s;
  const session: (s: ServerSession) => PageSession = (s) => s;
  expect([typeof snapshot, typeof session]).toEqual(['function', 'function']);
});

let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const ADMIN = 'admin-token-0123456789abcdef';
const READER = 'read-token-0123456789abcdef';
const config = {
  auth: {
    tokens: [
      { name: 'ops', tokenHash: hashToken(ADMIN), scopes: ['admin' as const] },
      { name: 'viewer', tokenHash: hashToken(READER), scopes: ['read' as const] },
    ],
  },
  http: { listen: '127.0.0.1:0' },
  targets: { t: { type: 'null' as const } },
  routes: { r: { streams: ['orders'], target: 't' } },
};

async function signIn(token: string): Promise<{ cookie: string; info: PageSession; setCookie: string }> {
  const res = await gw!.app.inject({ method: 'POST', url: '/ui/session', payload: { token } });
  expect(res.statusCode).toBe(200);
  const setCookie = String(res.headers['set-cookie']);
  return { cookie: setCookie.split(';')[0]!, info: res.json() as PageSession, setCookie };
}

describe('dashboard sessions', () => {
  it('exchanges a token for an HttpOnly SameSite=Strict cookie holding a random id, never the token', async () => {
    ({ gw } = await startGateway(config));
    const before = await gw.app.inject({ url: '/ui/session' });
    expect(before.json()).toEqual({ auth: true, signedIn: false });
    const { cookie, info, setCookie } = await signIn(ADMIN);
    expect(setCookie).toMatch(
      new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=/; Max-Age=28800$`),
    );
    expect(setCookie).not.toContain(ADMIN);
    expect(info).toMatchObject({ auth: true, signedIn: true, name: 'ops', scopes: ['admin'] });
    const now = await gw.app.inject({ url: '/ui/session', headers: { cookie } });
    expect(now.json()).toMatchObject({ signedIn: true, name: 'ops', csrf: info.csrf });
    expect((await gw.app.inject({ url: '/v1/routes', headers: { cookie } })).statusCode).toBe(200);
  });

  it('refuses a wrong token at sign-in, and sign-in from another origin', async () => {
    ({ gw } = await startGateway(config));
    const wrong = await gw.app.inject({ method: 'POST', url: '/ui/session', payload: { token: 'nope' } });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers['set-cookie']).toBeUndefined();
    const cross = await gw.app.inject({
      method: 'POST',
      url: '/ui/session',
      headers: { origin: 'http://evil.example' },
      payload: { token: ADMIN },
    });
    expect(cross.statusCode).toBe(403);
  });

  it('answers 401 without a cookie, and for a wrong or signed-out session', async () => {
    ({ gw } = await startGateway(config));
    expect((await gw.app.inject({ url: '/v1/routes' })).statusCode).toBe(401);
    const wrong = await gw.app.inject({ url: '/v1/routes', headers: { cookie: `${SESSION_COOKIE}=forged` } });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().error.code).toBe('WS_ERR_AUTH_REQUIRED');
    const { cookie, info } = await signIn(ADMIN);
    const out = await gw.app.inject({
      method: 'DELETE',
      url: '/ui/session',
      headers: { cookie, [CSRF_HEADER]: info.csrf! },
    });
    expect(String(out.headers['set-cookie'])).toContain('Max-Age=0');
    expect((await gw.app.inject({ url: '/v1/routes', headers: { cookie } })).statusCode).toBe(401);
  });

  it('needs the CSRF header, and a same-host Origin when there is one, for a mutation with the cookie', async () => {
    ({ gw } = await startGateway(config));
    const { cookie, info } = await signIn(ADMIN);
    const store = (headers: Record<string, string>) =>
      gw!.app.inject({ method: 'POST', url: '/v1/routes/r/store', headers: { cookie, ...headers } });
    const missing = await store({});
    expect(missing.statusCode).toBe(403);
    expect(missing.json().error.message).toContain(CSRF_HEADER);
    expect((await store({ [CSRF_HEADER]: 'guess' })).statusCode).toBe(403);
    expect((await store({ [CSRF_HEADER]: info.csrf!, origin: 'http://evil.example' })).statusCode).toBe(403);
    expect((await gw.ws.route('r').snapshot()).state).toBe('forwarding');
    const ok = await store({
      [CSRF_HEADER]: info.csrf!,
      host: 'gw.local:8080',
      origin: 'http://gw.local:8080',
    });
    expect(ok.statusCode).toBe(200);
    expect((await gw.ws.route('r').snapshot()).state).toBe('held');
  });

  it('lets a read-only session see but not act (403), CSRF header or not', async () => {
    ({ gw } = await startGateway(config));
    const { cookie, info } = await signIn(READER);
    expect(info.scopes).toEqual(['read']);
    expect((await gw.app.inject({ url: '/v1/routes', headers: { cookie } })).statusCode).toBe(200);
    const act = await gw.app.inject({
      method: 'POST',
      url: '/v1/routes/r/store',
      headers: { cookie, [CSRF_HEADER]: info.csrf! },
    });
    expect(act.statusCode).toBe(403);
    expect(act.json().error.code).toBe('WS_ERR_AUTH_FORBIDDEN');
  });

  it('judges a request with an Authorization header by it alone', async () => {
    ({ gw } = await startGateway(config));
    const { cookie } = await signIn(ADMIN);
    const res = await gw.app.inject({
      method: 'POST',
      url: '/v1/routes/r/store',
      headers: { cookie, authorization: `Bearer ${READER}` },
    });
    expect(res.statusCode).toBe(403);
    const bearer = await gw.app.inject({
      method: 'POST',
      url: '/v1/routes/r/store',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(bearer.statusCode).toBe(200);
  });

  it('expires a session after its ttl and keeps at most maxSessions', () => {
    let now = 1_000;
    const sessions = new UiSessions({ ttlMs: 100, maxSessions: 2, now: () => now });
    const a = sessions.create(OPEN_ACCESS);
    const cookieOf = (id: string) => ({ headers: { cookie: `x=1; ${SESSION_COOKIE}=${id}` } });
    expect(sessions.authenticate(cookieOf(a.id))).toBe(OPEN_ACCESS);
    now += 100;
    expect(() => sessions.authenticate(cookieOf(a.id))).toThrow(/expired/);
    expect(sessions.size).toBe(0);
    const b = sessions.create(OPEN_ACCESS);
    sessions.create(OPEN_ACCESS);
    sessions.create(OPEN_ACCESS);
    expect(sessions.size).toBe(2);
    expect(sessions.get(b.id)).toBeUndefined();
    expect(sessions.authenticate({ headers: {} })).toBeUndefined();
  });

  it('has no sign-in when no tokens are configured', async () => {
    ({ gw } = await startGateway({ ...config, auth: { tokens: [] } }));
    const res = await gw.app.inject({ url: '/ui/session' });
    expect(res.json()).toMatchObject({ auth: false, signedIn: true, scopes: ['publish', 'read', 'admin'] });
  });
});

describe('the dashboard files', () => {
  it('serves /ui and its assets under the strict CSP, and 404 for anything else under /ui/assets', async () => {
    ({ gw } = await startGateway(config));
    const csp =
      "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
    const index = await gw.app.inject({ url: '/ui' });
    if (index.statusCode === 404) {
      expect(index.json().error.message).toContain('npm run build');
      return;
    }
    expect(index.statusCode).toBe(200);
    expect(index.headers['content-security-policy']).toBe(csp);
    expect(index.body).not.toMatch(/<script>|<style|style=/);
    const js = /src="(\/ui\/assets\/[^"]+\.js)"/.exec(index.body)![1]!;
    const asset = await gw.app.inject({ url: js });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['content-type']).toContain('text/javascript');
    expect(asset.headers['content-security-policy']).toBe(csp);
    expect((await gw.app.inject({ url: '/ui/assets/..%2Fpackage.json' })).statusCode).toBe(404);
    expect((await gw.app.inject({ url: '/ui/assets/nope.js' })).statusCode).toBe(404);
  });
});

describe('the live view', () => {
  async function openEvents(headers: Record<string, string>, path = '/ui/events') {
    const ac = new AbortController();
    const res = await fetch(`${gw!.url}${path}`, { headers, signal: ac.signal });
    return { res, ac };
  }

  async function firstEvent(res: Response): Promise<string> {
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('event: snapshot')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    return text;
  }

  it('sends a snapshot with an id on connect and on a resume, in reach of the session', async () => {
    ({ gw } = await startGateway(config));
    await gw.ws.publish('orders', 'x');
    const { cookie } = await signIn(READER);
    const { res, ac } = await openEvents({ cookie });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const text = await firstEvent(res);
    expect(text).toMatch(/^retry: 2000\n\nid: \S+\nevent: snapshot\ndata: /);
    const view = JSON.parse(/data: (.*)\n/.exec(text)![1]!) as PageSnapshot;
    expect(view.routes.map((r) => r.name)).toEqual(['r']);
    expect(view.totals.published).toBe(1);
    ac.abort();
    const resumed = await openEvents({ cookie, 'last-event-id': '7' });
    expect(await firstEvent(resumed.res)).toContain('event: snapshot');
    resumed.ac.abort();
    expect((await openEvents({})).res.status).toBe(401);
  });

  it('allows at most 32 streams at once, 503 beyond, and frees a place when one closes', async () => {
    ({ gw } = await startGateway({ ...config, auth: { tokens: [] } }));
    const open = await Promise.all(Array.from({ length: 32 }, () => openEvents({})));
    expect(open.every((o) => o.res.status === 200)).toBe(true);
    const beyond = await openEvents({});
    expect(beyond.res.status).toBe(503);
    open[0]!.ac.abort();
    let status = 503;
    for (let i = 0; i < 50 && status === 503; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const again = await openEvents({});
      status = again.res.status;
      if (status === 200) again.ac.abort();
    }
    expect(status).toBe(200);
    for (const o of open) o.ac.abort();
  });

  it('sends a heartbeat comment between snapshots', async () => {
    ({ gw } = await startGateway({ ...config, auth: { tokens: [] } }));
    const app = Fastify();
    await app.register(uiEventsRoutes, {
      ws: gw.ws,
      access: () => OPEN_ACCESS,
      intervalMs: 60_000,
      heartbeatMs: 20,
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const ac = new AbortController();
    try {
      const address = app.server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${address.port}/ui/events`, { signal: ac.signal });
      const reader = res.body!.getReader();
      let text = '';
      while (!text.includes(': heartbeat\n\n')) text += new TextDecoder().decode((await reader.read()).value);
      expect(text.match(/event: snapshot/g)).toHaveLength(1);
    } finally {
      ac.abort();
      await app.close();
    }
  });

  it('ends every stream when the gateway closes', async () => {
    ({ gw } = await startGateway({ ...config, auth: { tokens: [] } }));
    const { res } = await openEvents({});
    await firstEvent(res);
    const started = Date.now();
    await gw.close();
    gw = undefined;
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('answers the same view once at /ui/snapshot (the polling fallback)', async () => {
    ({ gw } = await startGateway(config));
    const { cookie } = await signIn(ADMIN);
    const res = await gw.app.inject({ url: '/ui/snapshot', headers: { cookie } });
    expect(res.statusCode).toBe(200);
    const view: PageSnapshot = res.json();
    expect(view.routes[0]).toMatchObject({ name: 'r', state: 'forwarding', deadLetters: 0 });
  });
});
