/**
 * MQTT users: scrypt password hashes (`waystation hash-token`) and per-user publish/subscribe
 * ACLs as topic filters. Checking a password is slow on purpose, so it is kept from hurting
 * everyone else:
 * - scrypt runs on the libuv thread pool, never on the event loop (verifySecretAsync);
 * - at most `maxConcurrentVerifications` at once (the pool's 4 threads also do file I/O for the
 *   log), `maxQueuedVerifications` waiting; past that a CONNECT is refused as busy;
 * - a verified username/password pair (and a refused one) is remembered by its SHA-256, so
 *   scrypt runs once per pair, not per connection; concurrent checks of one pair share a run;
 * - consecutive failures from one remote address delay its next checks: `failureDelayMs`
 *   after the first, doubling up to `maxFailureDelayMs`; reset by a success, forgotten after
 *   15 quiet minutes; at most `trackedAddresses` remembered (the oldest go first).
 */
import { createHash } from 'node:crypto';
import { verifySecretAsync } from '../secret-hash.js';
import { topicFilterProblem, topicMatches } from './topic.js';

/** What a client may do, as topic filters (`mqtt.users[]`, `mqtt.anonymous`). */
export interface MqttAcl {
  publish: readonly string[];
  /** A subscription must lie within one of these… */
  subscribe: readonly string[];
  /** …and within none of these; messages on topics matching one are never delivered. Default none. */
  denySubscribe?: readonly string[];
}

export interface MqttUserConfig extends MqttAcl {
  username: string;
  passwordHash: string;
}

/** Who a connection is: a configured user, or anonymous (`acl` undefined: allowed everything). */
export type MqttPrincipal =
  | { kind: 'user'; user: MqttUserConfig }
  | { kind: 'anonymous'; acl: MqttAcl | undefined };

/** `busy`: too many password checks running and waiting (v5 0x89 Server busy, 3.1.1 server unavailable). */
export type AuthResult = MqttPrincipal | 'bad-credentials' | 'not-authorized' | 'busy';

export interface MqttAuthOptions {
  /** scrypt checks running at once. Default 2. */
  maxConcurrentVerifications?: number;
  /** scrypt checks waiting for a slot; past it a CONNECT is refused as busy. Default 32. */
  maxQueuedVerifications?: number;
  /** Delay before checking credentials from an address after one failure; doubles per failure. Default 100 ms. */
  failureDelayMs?: number;
  /** Largest such delay. Default 5000 ms (below the 10 s a client has to complete CONNECT). */
  maxFailureDelayMs?: number;
  /** Remote addresses whose failures are remembered. Default 10000. */
  trackedAddresses?: number;
  /** The password check (default: scrypt on the thread pool); injectable for tests. */
  verify?: (secret: Uint8Array, encoded: string) => Promise<boolean>;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export type ResolvedMqttAuthOptions = Readonly<Required<MqttAuthOptions>>;

export function resolveMqttAuthOptions(o: MqttAuthOptions = {}): ResolvedMqttAuthOptions {
  return Object.freeze({
    maxConcurrentVerifications: o.maxConcurrentVerifications ?? 2,
    maxQueuedVerifications: o.maxQueuedVerifications ?? 32,
    failureDelayMs: o.failureDelayMs ?? 100,
    maxFailureDelayMs: o.maxFailureDelayMs ?? 5000,
    trackedAddresses: o.trackedAddresses ?? 10_000,
    verify: o.verify ?? verifySecretAsync,
    now: o.now ?? Date.now,
    sleep: o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms))),
  });
}

const CACHE_LIMIT = 1000;
const FAILURE_MEMORY_MS = 15 * 60_000;
const BUSY = Symbol('busy');

export class MqttAuth {
  private readonly byName: Map<string, MqttUserConfig>;
  private readonly verified = new Map<string, boolean>();
  private readonly verifying = new Map<string, Promise<boolean | typeof BUSY>>();
  private readonly failures = new Map<string, { count: number; at: number }>();
  private readonly limiter: Limiter;
  private readonly options: ResolvedMqttAuthOptions;

  private readonly anonymous: MqttPrincipal | undefined;

  /** `anonymous`: false refuses clients without a username; true allows them everything; an ACL limits them. */
  constructor(users: readonly MqttUserConfig[], anonymous: boolean | MqttAcl, options: MqttAuthOptions = {}) {
    this.byName = new Map(users.map((u) => [u.username, u]));
    this.anonymous =
      anonymous === false
        ? undefined
        : { kind: 'anonymous', acl: anonymous === true ? undefined : anonymous };
    this.options = resolveMqttAuthOptions(options);
    this.limiter = new Limiter(this.options.maxConcurrentVerifications, this.options.maxQueuedVerifications);
  }

  /** Checks a CONNECT's credentials; `address` is the client's remote address (failure slow-down). */
  async authenticate(
    username: string | undefined,
    password: Buffer | undefined,
    address = '',
  ): Promise<AuthResult> {
    if (username === undefined) return this.anonymous ?? 'not-authorized';
    const delay = this.delayFor(address);
    if (delay > 0) await this.options.sleep(delay);
    const user = this.byName.get(username);
    let ok = false;
    if (user && password !== undefined) {
      const result = await this.check(user, password);
      if (result === BUSY) return 'busy';
      ok = result;
    }
    this.recordOutcome(address, ok);
    return ok && user ? { kind: 'user', user } : 'bad-credentials';
  }

  /** The current delay for an address's next check (ms). */
  delayFor(address: string): number {
    const f = this.failures.get(address);
    if (!f) return 0;
    if (this.options.now() - f.at > FAILURE_MEMORY_MS) {
      this.failures.delete(address);
      return 0;
    }
    const { failureDelayMs, maxFailureDelayMs } = this.options;
    return Math.min(maxFailureDelayMs, failureDelayMs * 2 ** Math.min(f.count - 1, 30));
  }

  private check(user: MqttUserConfig, password: Buffer): Promise<boolean | typeof BUSY> {
    const digest = createHash('sha256')
      .update(user.username)
      .update('\u0000')
      .update(password)
      .digest('base64');
    const known = this.verified.get(digest);
    if (known !== undefined) return Promise.resolve(known);
    let running = this.verifying.get(digest);
    if (!running) {
      running = this.limiter.run(() => this.options.verify(password, user.passwordHash));
      this.verifying.set(digest, running);
      void running.then(
        (ok) => {
          this.verifying.delete(digest);
          if (ok === BUSY) return;
          if (this.verified.size >= CACHE_LIMIT) this.verified.delete(this.verified.keys().next().value!);
          this.verified.set(digest, ok);
        },
        () => this.verifying.delete(digest),
      );
    }
    return running;
  }

  private recordOutcome(address: string, ok: boolean): void {
    const previous = this.failures.get(address);
    this.failures.delete(address);
    if (ok) return;
    this.failures.set(address, { count: (previous?.count ?? 0) + 1, at: this.options.now() });
    if (this.failures.size > this.options.trackedAddresses)
      this.failures.delete(this.failures.keys().next().value!);
  }

  static mayPublish(principal: MqttPrincipal, topic: string): boolean {
    const acl = aclOf(principal);
    return acl === undefined || acl.publish.some((f) => topicMatches(f, topic));
  }

  /**
   * A subscription is allowed when every topic it can match is matched by one allowed filter,
   * and it does not lie within a denied one. (One reaching further, like `#`, is allowed; the
   * denied topics are then withheld at delivery: see deniedTopics.)
   */
  static maySubscribe(principal: MqttPrincipal, filter: string): boolean {
    const acl = aclOf(principal);
    if (acl === undefined) return true;
    return (
      acl.subscribe.some((f) => filterWithin(f, filter)) &&
      !(acl.denySubscribe ?? []).some((f) => filterWithin(f, filter))
    );
  }

  /** Filters whose topics are never delivered to the principal; undefined when none (the common case). */
  static deniedTopics(principal: MqttPrincipal): readonly string[] | undefined {
    const denied = aclOf(principal)?.denySubscribe;
    return denied !== undefined && denied.length > 0 ? denied : undefined;
  }
}

function aclOf(principal: MqttPrincipal): MqttAcl | undefined {
  return principal.kind === 'user' ? principal.user : principal.acl;
}

/** Topic filters in an ACL that are not valid filters, as config issues (`at`: the ACL's config path). */
export function aclProblems(acl: MqttAcl, at: string): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  for (const key of ['publish', 'subscribe', 'denySubscribe'] as const)
    (acl[key] ?? []).forEach((f, i) => {
      const problem = topicFilterProblem(f);
      if (problem) problems.push({ path: `${at}.${key}[${i}]`, message: problem });
    });
  return problems;
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

/** At most `max` tasks at once, `maxQueued` waiting; beyond that a task is refused (BUSY). */
class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly max: number,
    private readonly maxQueued: number,
  ) {}

  async run<T>(task: () => Promise<T>): Promise<T | typeof BUSY> {
    if (this.running < this.max) this.running++;
    else if (this.waiting.length < this.maxQueued) await new Promise<void>((r) => this.waiting.push(r));
    else return BUSY;
    try {
      return await task();
    } finally {
      // The slot passes to the next waiting task, if any.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
