/**
 * Bearer tokens with scopes (`publish`, `read`, `admin`) and stream globs (SPEC §8).
 *
 * Tokens are long random secrets, so a keyed fast hash is as safe to configure as a slow KDF and
 * costs microseconds: `tokenHash` is "hmac-sha256$<salt b64>$<HMAC-SHA256(salt, token) b64>".
 * Checking a presented token computes one HMAC per configured token and compares in constant
 * time, synchronously: no request, with or without credentials, can hold the event loop.
 * (Passwords, which people choose, keep scrypt: see secret-hash.ts.)
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { CrossOriginError, ErrorCodes, WaystationError } from '../../errors.js';

export type Scope = 'publish' | 'read' | 'admin';

export interface TokenConfig {
  name: string;
  tokenHash: string;
  scopes: readonly Scope[];
  streams: readonly string[];
}

/** What a request may reach: its scopes, and which streams its globs cover. */
export interface Principal {
  name: string;
  scopes: ReadonlySet<Scope>;
  /** Whether the token's stream globs cover `stream`. */
  reaches(stream: string): boolean;
  /** True when the globs cover every possible stream name ("*"). */
  readonly unlimited: boolean;
}

/** The principal of every request when no tokens are configured (loopback only). */
export const OPEN_ACCESS: Principal = {
  name: '(no auth)',
  scopes: new Set<Scope>(['publish', 'read', 'admin']),
  reaches: () => true,
  unlimited: true,
};

export const TOKEN_HASH_PATTERN = /^hmac-sha256\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/;

/** The `tokenHash` to configure for a token. */
export function hashToken(token: string, salt: Buffer = randomBytes(16)): string {
  const digest = createHmac('sha256', salt).update(token).digest('base64');
  return `hmac-sha256$${salt.toString('base64')}$${digest}`;
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

export class AuthError extends WaystationError {
  constructor(status: 401 | 403, message: string) {
    super(status === 401 ? ErrorCodes.AuthRequired : ErrorCodes.AuthForbidden, message, {
      httpStatus: status,
    });
  }
}

interface ConfiguredToken {
  salt: Buffer;
  digest: Buffer;
  principal: Principal;
}

export class TokenAuth {
  private readonly tokens: readonly ConfiguredToken[];

  constructor(tokens: readonly TokenConfig[]) {
    this.tokens = tokens.map((t) => {
      const [, salt, digest] = t.tokenHash.split('$');
      const globs = t.streams.map(globToRegExp);
      return {
        salt: Buffer.from(salt!, 'base64'),
        digest: Buffer.from(digest!, 'base64'),
        principal: {
          name: t.name,
          scopes: new Set(t.scopes),
          reaches: (stream: string) => globs.some((re) => re.test(stream)),
          unlimited: t.streams.includes('*'),
        },
      };
    });
  }

  get enabled(): boolean {
    return this.tokens.length > 0;
  }

  /** The principal of an `Authorization: Bearer <token>` header; throws 401 if missing or unknown. */
  authenticate(header: string | undefined): Principal {
    if (!this.enabled) return OPEN_ACCESS;
    const match = /^Bearer +(\S{1,512}) *$/i.exec(header ?? '');
    if (!match) throw new AuthError(401, 'This endpoint needs "Authorization: Bearer <token>".');
    const token = match[1]!;
    let found: Principal | undefined;
    // Every configured token is compared, found or not, so timing does not tell which matched.
    for (const t of this.tokens) {
      const digest = createHmac('sha256', t.salt).update(token).digest();
      if (digest.byteLength === t.digest.byteLength && timingSafeEqual(digest, t.digest))
        found ??= t.principal;
    }
    if (!found) throw new AuthError(401, 'The bearer token is not valid.');
    return found;
  }

  /** Throws 403 unless the principal has `scope` (admin implies every scope). */
  static requireScope(principal: Principal, scope: Scope): void {
    if (!principal.scopes.has(scope) && !principal.scopes.has('admin')) {
      throw new AuthError(403, `Token "${principal.name}" lacks the "${scope}" scope.`);
    }
  }
}

/**
 * The route handlers' view of authorization: `access(req, scope)` authenticates the request,
 * checks the scope (401/403) and returns the principal, whose `reaches` bounds every object the
 * handler touches; an object out of reach answers as one that does not exist.
 */
export type AccessCheck = (req: AccessRequest, scope: Scope) => Principal;

/** What an access check reads of a request: the Bearer header, or a dashboard session's cookie. */
export interface AccessRequest {
  method?: string;
  headers: { authorization?: string; cookie?: string; [name: string]: string | string[] | undefined };
}

/**
 * The second way in beside the Bearer header: the dashboard's session cookie
 * (src/admin/ui-session.ts). Answers undefined when the request carries no session cookie, and
 * throws 401 for an unknown or expired session, 403 for a mutation failing the CSRF checks.
 */
export type SessionAuthenticator = (req: AccessRequest) => Principal | undefined;

/**
 * The gateway's access check: a request with an Authorization header is judged by it alone;
 * without one, by its session cookie when it has one; otherwise it needs a token (401).
 * Authentication happens once per request.
 */
export function createAccessCheck(auth: TokenAuth, session?: SessionAuthenticator): AccessCheck {
  const principals = new WeakMap<object, Principal>();
  return (req, scope) => {
    if (!auth.enabled) refuseCrossOrigin(req);
    let principal = principals.get(req);
    if (!principal) {
      const fromSession =
        auth.enabled && req.headers.authorization === undefined ? session?.(req) : undefined;
      principal = fromSession ?? auth.authenticate(req.headers.authorization);
      principals.set(req, principal);
    }
    TokenAuth.requireScope(principal, scope);
    return principal;
  };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Without tokens the API trusts every local client, so a web page open in a browser on this host
 * must not be able to use it: browsers send Origin with cross-origin POSTs and DELETEs, clients
 * like curl and the CLI send none. A state-changing request whose Origin is not this host
 * (`null` included: sandboxed pages) is refused with 403.
 */
function refuseCrossOrigin(req: AccessRequest): void {
  if (req.method === undefined || SAFE_METHODS.has(req.method)) return;
  const origin = req.headers.origin;
  if (typeof origin !== 'string') return;
  const host = typeof req.headers.host === 'string' ? req.headers.host : undefined;
  let originHost: string | undefined;
  try {
    originHost = new URL(origin).host;
  } catch {
    originHost = undefined;
  }
  if (originHost === undefined || originHost !== host) throw new CrossOriginError(origin, host);
}

/** Whether a route is within reach: every stream it reads must be. */
export function reachesAll(principal: Principal, streams: readonly string[]): boolean {
  return streams.every((s) => principal.reaches(s));
}
