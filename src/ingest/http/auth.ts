/**
 * Bearer tokens with scopes (`publish`, `read`, `admin`) and stream globs. Only scrypt hashes
 * of tokens are configured (secret-hash.ts); a token seen once is remembered
 * by its SHA-256 so the slow scrypt runs once per token, not per request.
 */
import { createHash } from 'node:crypto';
import { ErrorCodes, WaystationError } from '../../errors.js';
import { hashSecret, verifySecret } from '../secret-hash.js';

export type Scope = 'publish' | 'read' | 'admin';

export interface TokenConfig {
  name: string;
  tokenHash: string;
  scopes: readonly Scope[];
  streams: readonly string[];
}

export interface Principal {
  name: string;
  scopes: ReadonlySet<Scope>;
  streams: readonly RegExp[];
}

/** The hash to configure as `tokenHash` for a token. */
export function hashToken(token: string, salt?: Buffer): string {
  return hashSecret(token, salt);
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

const CACHE_LIMIT = 1000;

export class TokenAuth {
  private readonly known = new Map<string, Principal | null>();

  constructor(private readonly tokens: readonly TokenConfig[]) {}

  get enabled(): boolean {
    return this.tokens.length > 0;
  }

  /** The principal of an `Authorization: Bearer <token>` header; throws 401 if missing or unknown. */
  authenticate(header: string | undefined): Principal {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    if (!match) throw new AuthError(401, 'This endpoint needs "Authorization: Bearer <token>".');
    const token = match[1]!;
    const digest = createHash('sha256').update(token).digest('base64');
    let principal = this.known.get(digest);
    if (principal === undefined) {
      const entry = this.tokens.find((t) => verifySecret(token, t.tokenHash));
      principal = entry
        ? { name: entry.name, scopes: new Set(entry.scopes), streams: entry.streams.map(globToRegExp) }
        : null;
      if (this.known.size >= CACHE_LIMIT) this.known.delete(this.known.keys().next().value!);
      this.known.set(digest, principal);
    }
    if (!principal) throw new AuthError(401, 'The bearer token is not valid.');
    return principal;
  }

  /** Throws 403 unless the principal has `scope` (and, when given, may use `stream`). */
  authorize(principal: Principal, scope: Scope, stream?: string): void {
    if (!principal.scopes.has(scope) && !principal.scopes.has('admin')) {
      throw new AuthError(403, `Token "${principal.name}" lacks the "${scope}" scope.`);
    }
    if (stream !== undefined && !principal.streams.some((re) => re.test(stream))) {
      throw new AuthError(403, `Token "${principal.name}" may not use stream "${stream}".`);
    }
  }
}
