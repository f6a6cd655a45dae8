/**
 * MQTT users: scrypt password hashes (`waystation hash-token`) and per-user publish/subscribe
 * ACLs as topic filters. A verified username/password pair is remembered by its SHA-256, so the
 * slow scrypt runs once per pair, not per connection.
 */
import { createHash } from 'node:crypto';
import { verifySecret } from '../secret-hash.js';
import { topicMatches } from './topic.js';

export interface MqttUserConfig {
  username: string;
  passwordHash: string;
  publish: readonly string[];
  subscribe: readonly string[];
}

/** Who a connection is: a configured user, or anonymous (allowed everything). */
export type MqttPrincipal = { kind: 'user'; user: MqttUserConfig } | { kind: 'anonymous' };

export type AuthResult = MqttPrincipal | 'bad-credentials' | 'not-authorized';

const CACHE_LIMIT = 1000;

export class MqttAuth {
  private readonly byName: Map<string, MqttUserConfig>;
  private readonly verified = new Map<string, boolean>();

  constructor(
    users: readonly MqttUserConfig[],
    private readonly allowAnonymous: boolean,
  ) {
    this.byName = new Map(users.map((u) => [u.username, u]));
  }

  authenticate(username: string | undefined, password: Buffer | undefined): AuthResult {
    if (username === undefined) return this.allowAnonymous ? { kind: 'anonymous' } : 'not-authorized';
    const user = this.byName.get(username);
    if (!user || password === undefined) return 'bad-credentials';
    const digest = createHash('sha256').update(username).update('\u0000').update(password).digest('base64');
    let ok = this.verified.get(digest);
    if (ok === undefined) {
      ok = verifySecret(password, user.passwordHash);
      if (this.verified.size >= CACHE_LIMIT) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(digest, ok);
    }
    return ok ? { kind: 'user', user } : 'bad-credentials';
  }

  static mayPublish(principal: MqttPrincipal, topic: string): boolean {
    return principal.kind === 'anonymous' || principal.user.publish.some((f) => topicMatches(f, topic));
  }

  /** A subscription is allowed when every topic it can match is matched by one allowed filter. */
  static maySubscribe(principal: MqttPrincipal, filter: string): boolean {
    return principal.kind === 'anonymous' || principal.user.subscribe.some((f) => filterWithin(f, filter));
  }
}

/** Whether every topic `inner` matches is also matched by `outer`. */
export function filterWithin(outer: string, inner: string): boolean {
  // Leading wildcards do not reach "$" topics [MQTT-4.7.2-1].
  if (inner.startsWith('$') && (outer.startsWith('+') || outer.startsWith('#'))) return false;
  const o = outer.split('/');
  const i = inner.split('/');
  for (let k = 0; k < o.length; k++) {
    const ol = o[k]!;
    if (ol === '#') return true;
    const il = i[k];
    if (il === undefined) return false;
    if (il === '#') return false;
    if (ol === '+') continue;
    if (il === '+' || il !== ol) return false;
  }
  return o.length === i.length;
}
