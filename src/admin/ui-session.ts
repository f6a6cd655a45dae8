/**
 * Dashboard sessions (issue 11, SPEC §7): the sign-in form exchanges a token for a session
 * cookie, because a browser cannot put an Authorization header on an EventSource and a token must
 * never sit in a URL or a cookie.
 *
 * - The cookie holds a random session id (32 bytes, base64url), mapped here to the principal the
 *   token authenticated as; `HttpOnly; SameSite=Strict; Path=/; Max-Age` (and `Secure` over TLS).
 * - Sessions live in memory, bounded (`maxSessions`, the oldest dropped first) and expire after
 *   `ttlMs` from sign-in; a restart signs everyone out.
 * - Mutations with the cookie need CSRF proof: `X-Waystation-CSRF` equal to the session's own
 *   random value (which the page reads from `GET /ui/session`), and an `Origin`, when present,
 *   naming this host. SameSite=Strict already keeps the cookie off cross-site requests.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccessRequest, Principal, SessionAuthenticator, TokenAuth } from '../ingest/http/auth.js';
import { AuthError } from '../ingest/http/auth.js';

export const SESSION_COOKIE = 'ws_session';
export const CSRF_HEADER = 'x-waystation-csrf';

export interface UiSessionOptions {
  /** How long a session lasts from sign-in, ms. Default 8 h. */
  ttlMs?: number;
  /** Sessions kept at most; signing in beyond drops the oldest. Default 256. */
  maxSessions?: number;
  /** Milliseconds since the epoch (tests inject a clock). */
  now?: () => number;
}

interface Session {
  principal: Principal;
  csrf: string;
  expiresAt: number;
}

/** What `GET /ui/session` answers; the page decides from it what to show. */
export interface SessionInfo {
  /** Whether tokens are configured (false: loopback only, no sign-in). */
  auth: boolean;
  signedIn: boolean;
  name?: string;
  scopes?: string[];
  /** The value to send in X-Waystation-CSRF with every mutation. */
  csrf?: string;
  expiresAt?: number;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function header(req: AccessRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The session id in a Cookie header, if any. */
export function sessionIdOf(req: AccessRequest): string | undefined {
  const cookie = req.headers.cookie;
  if (!cookie) return undefined;
  for (const part of cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.byteLength === y.byteLength && timingSafeEqual(x, y);
}

/** Whether an Origin header (when there is one) names the host the request was sent to. */
export function originAllowed(req: AccessRequest): boolean {
  const origin = header(req, 'origin');
  if (origin === undefined) return true;
  const host = header(req, 'host');
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}

export class UiSessions {
  private readonly sessions = new Map<string, Session>();
  readonly ttlMs: number;
  private readonly maxSessions: number;
  private readonly now: () => number;

  constructor(options: UiSessionOptions = {}) {
    this.ttlMs = options.ttlMs ?? 8 * 3600_000;
    this.maxSessions = options.maxSessions ?? 256;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** A new session for `principal`: its id (for the cookie) and CSRF value. */
  create(principal: Principal): { id: string; csrf: string; expiresAt: number } {
    this.sweep();
    while (this.sessions.size >= this.maxSessions) {
      const oldest = this.sessions.keys().next().value;
      if (oldest === undefined) break;
      this.sessions.delete(oldest);
    }
    const id = randomBytes(32).toString('base64url');
    const session = {
      principal,
      csrf: randomBytes(24).toString('base64url'),
      expiresAt: this.now() + this.ttlMs,
    };
    this.sessions.set(id, session);
    return { id, csrf: session.csrf, expiresAt: session.expiresAt };
  }

  /** The live session of an id, or undefined (unknown or expired; an expired one is dropped). */
  get(id: string | undefined): Session | undefined {
    if (id === undefined) return undefined;
    const s = this.sessions.get(id);
    if (s && s.expiresAt <= this.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    return s;
  }

  delete(id: string | undefined): void {
    if (id !== undefined) this.sessions.delete(id);
  }

  private sweep(): void {
    const now = this.now();
    for (const [id, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(id);
  }

  /** The access check's cookie lookup (auth.ts `SessionAuthenticator`). */
  readonly authenticate: SessionAuthenticator = (req) => {
    const id = sessionIdOf(req);
    if (id === undefined) return undefined;
    const session = this.get(id);
    if (!session) throw new AuthError(401, 'The dashboard session has expired or is unknown; sign in again.');
    if (!SAFE_METHODS.has((req.method ?? 'GET').toUpperCase())) {
      const csrf = header(req, CSRF_HEADER);
      if (csrf === undefined || !sameText(csrf, session.csrf))
        throw new AuthError(403, `A change made with a session cookie needs the ${CSRF_HEADER} header.`);
      if (!originAllowed(req))
        throw new AuthError(403, 'The request comes from another origin than this gateway.');
    }
    return session.principal;
  };
}

export interface UiSessionRoutesOptions {
  auth: TokenAuth;
  sessions: UiSessions;
  /** Adds Secure to the cookie (the gateway serves HTTPS). */
  secure: boolean;
}

function cookie(value: string, maxAgeS: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeS}${secure ? '; Secure' : ''}`;
}

/** `GET/POST/DELETE /ui/session`: who is signed in, sign in with a token, sign out. */
export async function uiSessionRoutes(app: FastifyInstance, opts: UiSessionRoutesOptions): Promise<void> {
  const { auth, sessions, secure } = opts;

  app.get('/ui/session', { schema: { hide: true } }, async (req): Promise<SessionInfo> => {
    if (!auth.enabled)
      return { auth: false, signedIn: true, name: '(no auth)', scopes: ['publish', 'read', 'admin'] };
    const session = sessions.get(sessionIdOf(req));
    if (!session) return { auth: true, signedIn: false };
    return {
      auth: true,
      signedIn: true,
      name: session.principal.name,
      scopes: [...session.principal.scopes],
      csrf: session.csrf,
      expiresAt: session.expiresAt,
    };
  });

  app.post<{ Body: { token: string } }>(
    '/ui/session',
    {
      schema: {
        hide: true,
        body: {
          type: 'object',
          properties: { token: { type: 'string', minLength: 1, maxLength: 512 } },
          required: ['token'],
          additionalProperties: false,
        },
      },
    },
    async (req: FastifyRequest<{ Body: { token: string } }>, reply: FastifyReply) => {
      if (!originAllowed(req)) throw new AuthError(403, 'Sign-in from another origin than this gateway.');
      if (!auth.enabled) return { auth: false, signedIn: true };
      const principal = auth.authenticate(`Bearer ${req.body.token}`);
      sessions.delete(sessionIdOf(req));
      const created = sessions.create(principal);
      reply.header('set-cookie', cookie(created.id, Math.floor(sessions.ttlMs / 1000), secure));
      return {
        auth: true,
        signedIn: true,
        name: principal.name,
        scopes: [...principal.scopes],
        csrf: created.csrf,
        expiresAt: created.expiresAt,
      } satisfies SessionInfo;
    },
  );

  app.delete('/ui/session', { schema: { hide: true } }, async (req, reply) => {
    if (!originAllowed(req)) throw new AuthError(403, 'Sign-out from another origin than this gateway.');
    sessions.delete(sessionIdOf(req));
    reply.header('set-cookie', cookie('', 0, secure));
    return { auth: auth.enabled, signedIn: !auth.enabled } satisfies SessionInfo;
  });
}
