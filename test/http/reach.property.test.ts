/**
 * Authorization as a property (SPEC §8): random tokens (scopes × stream globs) against random
 * layouts of streams, routes and store-and-forward topics, every endpoint, each answer checked
 * against a small reference `allowed(token, endpoint, object)`.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hashToken } from '../../src/ingest/http/auth.js';
import { startGateway } from '../support/gateway.js';

const STREAMS = ['orders', 'orders-eu', 'other', 'a.b'] as const;
const TOPIC_STREAMS = ['orders-t', 'zz-t'] as const;
const GLOBS = ['*', 'orders*', 'other', 'a.?', 'zz*', 'orders-?u', 'nomatch'] as const;
const SCOPES = ['publish', 'read', 'admin'] as const;
type Scope = (typeof SCOPES)[number];

interface TokenSpec {
  scopes: Scope[];
  globs: string[];
}

interface Layout {
  routes: string[][]; // streams of route r<i>
  topics: (typeof TOPIC_STREAMS)[number][]; // topic t<i>/# on that stream
  tokens: TokenSpec[];
}

/** The reference: a glob matches like a shell pattern over the whole name. */
function globMatches(glob: string, name: string): boolean {
  const re = new RegExp(
    `^${[...glob].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\-]/g, '\\$&'))).join('')}$`,
  );
  return re.test(name);
}

function reaches(token: TokenSpec, stream: string): boolean {
  return token.globs.some((g) => globMatches(g, stream));
}

function hasScope(token: TokenSpec, scope: Scope): boolean {
  return token.scopes.includes(scope) || token.scopes.includes('admin');
}

/** Expected status: 403 without the scope, 404 for an object out of reach, else `ok`. */
function allowed(token: TokenSpec, scope: Scope, streams: readonly string[], ok: number): number {
  if (!hasScope(token, scope)) return 403;
  return streams.every((s) => reaches(token, s)) ? ok : 404;
}

const layoutArb: fc.Arbitrary<Layout> = fc.record({
  routes: fc.array(fc.uniqueArray(fc.constantFrom(...STREAMS), { minLength: 1, maxLength: 3 }), {
    minLength: 1,
    maxLength: 4,
  }),
  topics: fc.uniqueArray(fc.constantFrom(...TOPIC_STREAMS), { maxLength: 2 }),
  tokens: fc.array(
    fc.record({
      scopes: fc.uniqueArray(fc.constantFrom(...SCOPES), { minLength: 1, maxLength: 3 }),
      globs: fc.uniqueArray(fc.constantFrom(...GLOBS), { minLength: 1, maxLength: 2 }),
    }),
    { minLength: 1, maxLength: 3 },
  ),
});

describe('authorization reach', () => {
  it('every endpoint answers as allowed(token, endpoint, object) says', async () => {
    let created = 0;
    await fc.assert(
      fc.asyncProperty(layoutArb, async (layout) => {
        const secrets = layout.tokens.map((_, i) => `token-${i}-${'x'.repeat(24)}`);
        const { gw } = await startGateway({
          streams: Object.fromEntries(STREAMS.map((s) => [s, {}])),
          mqtt: {
            listen: '127.0.0.1:0',
            allowAnonymous: true,
            storeAndForwardTopics: layout.topics.map((stream, i) => ({ topic: `t${i}/#`, stream })),
          },
          auth: {
            tokens: layout.tokens.map((t, i) => ({
              name: `tok${i}`,
              tokenHash: hashToken(secrets[i]!),
              scopes: t.scopes,
              streams: t.globs,
            })),
          },
          targets: { t: { type: 'null' } },
          routes: Object.fromEntries(layout.routes.map((streams, i) => [`r${i}`, { streams, target: 't' }])),
        });
        try {
          const allStreams: string[] = [...STREAMS, ...layout.topics];
          const runtimeTopics: string[] = []; // streams of topics created through the API in this run
          const ids = new Map<string, string>();
          for (const s of allStreams) ids.set(s, (await gw.ws.publish(s, 'x')).id);
          for (const [i, token] of layout.tokens.entries()) {
            const headers = { authorization: `Bearer ${secrets[i]}` };
            const call = async (
              method: 'GET' | 'POST' | 'DELETE',
              url: string,
              payload?: object | string,
            ) => {
              const res = await gw.app.inject({
                method,
                url,
                headers:
                  typeof payload === 'object' ? { ...headers, 'content-type': 'application/json' } : headers,
                payload:
                  payload === undefined
                    ? undefined
                    : typeof payload === 'string'
                      ? payload
                      : JSON.stringify(payload),
              });
              const body = res.body === '' ? undefined : (JSON.parse(res.body) as Record<string, unknown>);
              if (res.statusCode >= 400)
                expect((body as { error: { code: string } }).error.code, `${method} ${url}`).toMatch(
                  /^WS_ERR_/,
                );
              return { status: res.statusCode, body };
            };
            const check = async (
              method: 'GET' | 'POST' | 'DELETE',
              url: string,
              expected: number,
              payload?: object | string,
            ) => {
              const res = await call(method, url, payload);
              expect(res.status, `${method} ${url} with ${JSON.stringify(token)}`).toBe(expected);
              return res.status < 300 ? res.body : undefined;
            };

            // Listings show exactly what is within reach.
            const streamList = await call('GET', '/v1/streams');
            if (!hasScope(token, 'read')) expect(streamList.status).toBe(403);
            else {
              const listed = (streamList.body!.streams as { name: string; routes: string[] }[]).map(
                (s) => s.name,
              );
              expect(listed.sort()).toEqual(
                [...allStreams, ...runtimeTopics].filter((s) => reaches(token, s)).sort(),
              );
              for (const s of streamList.body!.streams as { name: string; routes: string[] }[])
                for (const r of s.routes)
                  expect(layout.routes[Number(r.slice(1))]!.every((x) => reaches(token, x))).toBe(true);
            }
            for (const list of ['/v1/routes', '/v1/routes:activity']) {
              const routeList = await call('GET', list);
              if (!hasScope(token, 'read')) expect(routeList.status).toBe(403);
              else
                expect((routeList.body!.routes as { name: string }[]).map((r) => r.name).sort()).toEqual(
                  layout.routes
                    .flatMap((streams, r) => (streams.every((s) => reaches(token, s)) ? [`r${r}`] : []))
                    .sort(),
                );
            }
            const topicList = await call('GET', '/v1/mqtt/topics');
            if (!hasScope(token, 'read')) expect(topicList.status).toBe(403);
            else
              expect((topicList.body!.topics as { stream: string }[]).map((t) => t.stream).sort()).toEqual(
                [...layout.topics, ...runtimeTopics].filter((s) => reaches(token, s)).sort(),
              );

            // Single objects: out of reach answers as not found.
            for (const s of allStreams) {
              await check('GET', `/v1/streams/${s}`, allowed(token, 'read', [s], 200));
              const receipt = await check(
                'GET',
                `/v1/messages/${ids.get(s)}`,
                allowed(token, 'read', [s], 200),
              );
              if (receipt)
                expect(Object.keys(receipt.routes as object).sort()).toEqual(
                  layout.routes
                    .flatMap((streams, r) =>
                      streams.includes(s) && streams.every((x) => reaches(token, x)) ? [`r${r}`] : [],
                    )
                    .sort(),
                );
              await check('POST', `/v1/streams/${s}/messages`, allowed(token, 'publish', [s], 202), 'p');
              await check(
                'POST',
                `/v1/streams/${s}/messages:batch`,
                allowed(token, 'publish', [s], 202),
                '{"payload":"b"}\n',
              );
            }
            for (const [r, streams] of layout.routes.entries()) {
              const base = `/v1/routes/r${r}`;
              await check('GET', base, allowed(token, 'read', streams, 200));
              await check('GET', `${base}/dead-letters`, allowed(token, 'read', streams, 200));
              await check('GET', `${base}/history?window=1h`, allowed(token, 'read', streams, 200));
              await check('GET', `${base}/timeline`, allowed(token, 'read', streams, 200));
              await check('POST', `${base}/store`, allowed(token, 'admin', streams, 200));
              await check('POST', `${base}/forward`, allowed(token, 'admin', streams, 200));
              await check('POST', `${base}/purge?top=1`, allowed(token, 'admin', streams, 200));
              await check('POST', `${base}/reset-counters`, allowed(token, 'admin', streams, 200));
              await check('POST', `${base}/dead-letters/resubmit`, allowed(token, 'admin', streams, 200), {
                all: true,
              });
              await check('DELETE', `${base}/dead-letters`, allowed(token, 'admin', streams, 200), {
                all: true,
              });
            }
            for (const [t, stream] of layout.topics.entries()) {
              // Topics from the configuration cannot be removed: 409 when in reach, 404 when not.
              await check(
                'DELETE',
                `/v1/mqtt/topics/${encodeURIComponent(`t${t}/#`)}`,
                allowed(token, 'admin', [stream], 409),
              );
              await check('DELETE', `/v1/mqtt/topics/${stream}`, allowed(token, 'admin', [stream], 409));
            }
            for (const prefix of ['orders-n', 'zz-n']) {
              const stream = `${prefix}${created++}`;
              const expected = !hasScope(token, 'admin') ? 403 : reaches(token, stream) ? 201 : 403;
              await check('POST', '/v1/mqtt/topics', expected, { topic: `new/${stream}/#`, stream });
              if (expected === 201) runtimeTopics.push(stream);
            }

            // Metrics: no series about a stream, route or topic out of reach.
            const metrics = await gw.app.inject({ url: '/metrics', headers });
            if (!hasScope(token, 'read')) expect(metrics.statusCode).toBe(403);
            else {
              for (const m of metrics.body.matchAll(/\b(stream|route)="([^"]*)"/g)) {
                const streams = m[1] === 'stream' ? [m[2]!] : layout.routes[Number(m[2]!.slice(1))]!;
                expect(
                  streams.every((s) => reaches(token, s)),
                  m[0],
                ).toBe(true);
              }
              for (const s of allStreams)
                if (reaches(token, s))
                  expect(metrics.body).toContain(`waystation_stream_messages{stream="${s}"}`);
            }
          }
        } finally {
          await gw.close();
        }
      }),
      { numRuns: 12 },
    );
  }, 120_000);
});
