/**
 * One Waystation node of a cluster (issue 10): its heartbeat, which routes it owns, and how a
 * route action reaches the node that owns the route.
 *
 * - **Heartbeats.** Every `leaseTtl / 4` the node writes `<prefix>_nodes/<nodeId>` (a KV bucket
 *   whose entries expire `leaseTtl` after their last write) and reads the others: those are the
 *   live nodes that route placement spreads routes over.
 * - **Leases.** Per route a `LeaseKeeper` (lease-keeper.ts) over `<prefix>_leases`. The node
 *   contends for a free lease when placement says so (route-placement.ts: the preferred node at
 *   once, the others after the lease stayed free a while), and hands a route over when another
 *   live node is preferred for it. A group's routes hash alike, so they land on one node, where
 *   the engine coordinates them. Taking a route: read its saved state from KV, then the engine
 *   starts its runner; losing it: the engine stops the runner at once, saving nothing. Progress
 *   writes are fenced with the lease's revision (JetStreamStore.fenceProgress).
 * - **Standby views.** The routes other nodes own are read again from KV every second when their
 *   saved progress changed, so receipts, snapshots and collection here follow the owner.
 * - **Route actions.** Served on `<prefix>.cmd.<nodeId>` (request/reply, JSON); a node that does
 *   not own a route sends the action to the owner named by the route's lease.
 *
 * This implements the delivery engine's `RouteOwnership` (structurally: the cluster backend does
 * not import the delivery layer).
 */
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { ClusterRouteUnownedError, ClusterUnavailableError, WaystationError } from '../errors.js';
import { JetStreamLeaseKv } from './jetstream-lease-kv.js';
import type { JetStreamStore } from './jetstream-store.js';
import { resolveLeaseOptions } from './lease.js';
import { LeaseKeeper } from './lease-keeper.js';
import { placementKey, shouldContend, shouldHandOver } from './route-placement.js';

export interface ClusterNodeOptions {
  nc: NatsConnection;
  store: JetStreamStore;
  nodeId: string;
  prefix: string;
  replicas: number;
  leaseTtlMs: number;
  /** Every route, with its group: a group's routes are placed on one node (they store together). */
  routes: readonly { name: string; group?: string | undefined }[];
  /** Waystation's version, shown in GET /v1/cluster. */
  version: string;
  /**
   * A digest of what must be the same on every node (streams, targets, routes, lease TTL): a
   * peer whose digest differs is reported once (onConfigMismatch) and shown in GET /v1/cluster.
   */
  configDigest?: string;
  onConfigMismatch?: (peer: string) => void;
  /** How often standby views of routes owned elsewhere are read again. Default 1 000 ms. */
  standbyRefreshMs?: number;
  /** Lease taken, lost or handed over (logs and metrics). */
  onLeaseChange?: (route: string, owned: boolean, reason: 'acquired' | 'lost' | 'handed-over') => void;
  /** A lease renewal was answered after `ms`. */
  onRenewal?: (ms: number) => void;
  /** A background step failed (it is retried on the next tick). */
  onError?: (err: unknown, context: string) => void;
}

/** An action on a route, sent to its owner. */
export type RouteCommand =
  | { type: 'store' | 'forward' | 'reset-counters' | 'snapshot' }
  | { type: 'purge'; top?: number }
  | { type: 'resubmit' | 'delete-dead'; ids?: string[] };

export interface NodeHeartbeat {
  nodeId: string;
  version: string;
  /** The node's configuration digest (see ClusterNodeOptions.configDigest). */
  config?: string | undefined;
  startedAt: string;
  heartbeatAt: string;
  /** Routes this node owned at its last heartbeat. */
  routes: string[];
}

export interface ClusterView {
  nodeId: string;
  nodes: (NodeHeartbeat & { self: boolean; sameConfig: boolean })[];
  /** Route → owning node (null: nobody right now). */
  owners: Record<string, string | null>;
  nats: { connected: boolean; server: string | undefined; serverVersion: string | undefined };
  leaseTtlMs: number;
}

interface Slot {
  /** What placement hashes: the route's group, or the route itself. */
  placementKey: string;
  keeper: LeaseKeeper | undefined;
  /** What the engine was last told. */
  owned: boolean;
  freeChecks: number;
  /** Serializes reloads and assignments of this route. */
  chain: Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const REQUEST_TIMEOUT_MS = 5_000;

export class ClusterNode {
  readonly nodeId: string;
  private readonly slots = new Map<string, Slot>();
  private readonly aliveTicks = new Map<string, number>();
  /** Peers already reported for running another configuration. */
  private readonly mismatched = new Set<string>();
  private live: string[] = [];
  private heartbeats: NodeHeartbeat[] = [];
  private assign: ((route: string, owned: boolean) => Promise<void>) | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private standbyTimer: NodeJS.Timeout | undefined;
  /** The heartbeat-and-placement round under way, if any. */
  private ticking: Promise<void> | undefined;
  private stopped = false;
  private commands: Subscription | undefined;
  private readonly startedAt = new Date().toISOString();
  readonly counters = { acquired: 0, lost: 0, handedOver: 0 };

  private constructor(
    private readonly options: ClusterNodeOptions,
    private readonly leases: JetStreamLeaseKv,
    private readonly nodes: KV,
  ) {
    this.nodeId = options.nodeId;
    for (const r of options.routes)
      this.slots.set(r.name, {
        placementKey: placementKey(r.name, r.group),
        keeper: undefined,
        owned: false,
        freeChecks: 0,
        chain: Promise.resolve(),
      });
  }

  static async open(options: ClusterNodeOptions): Promise<ClusterNode> {
    resolveLeaseOptions({ leaseTtlMs: options.leaseTtlMs });
    try {
      const leases = await JetStreamLeaseKv.open(options.nc, {
        bucket: `${options.prefix}_leases`,
        leaseTtlMs: options.leaseTtlMs,
        replicas: options.replicas,
      });
      const kvm = new Kvm(options.nc);
      const name = `${options.prefix}_nodes`;
      const nodes = await kvm
        .create(name, { ttl: options.leaseTtlMs, replicas: options.replicas, history: 1 })
        .catch((err: unknown) => kvm.open(name).catch(() => Promise.reject(err)));
      return new ClusterNode(options, leases, nodes);
    } catch (err) {
      if (err instanceof WaystationError) throw err;
      throw new ClusterUnavailableError('The cluster lease and node buckets could not be opened', {
        cause: err,
      });
    }
  }

  private get ttl(): number {
    return this.options.leaseTtlMs;
  }

  // ------------------------------------------------------------------ RouteOwnership

  async start(assign: (route: string, owned: boolean) => Promise<void>): Promise<void> {
    this.assign = assign;
    await this.tick();
    const every = Math.max(100, Math.floor(this.ttl / 4));
    this.tickTimer = setInterval(() => void this.tick(), every);
    this.tickTimer.unref();
    this.standbyTimer = setInterval(() => this.refreshStandby(), this.options.standbyRefreshMs ?? 1_000);
    this.standbyTimer.unref();
  }

  maySend(route: string): boolean {
    return this.slots.get(route)?.keeper?.maySend() ?? false;
  }

  /** Nodes seen alive at the last heartbeat (this one included). */
  get liveNodes(): readonly string[] {
    return this.live;
  }

  get connected(): boolean {
    return !this.options.nc.isClosed() && this.options.nc.info !== undefined;
  }

  /** Routes this node may send for now. */
  ownedRoutes(): string[] {
    return [...this.slots.keys()].filter((r) => this.maySend(r));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.standbyTimer) clearInterval(this.standbyTimer);
    this.commands?.unsubscribe();
    // A placement round may be about to start a keeper: let it end first.
    await this.ticking;
    await Promise.allSettled([...this.slots.values()].map((s) => s.chain));
    await Promise.allSettled([...this.slots.values()].map((s) => s.keeper?.stop()));
    await this.nodes.delete(this.nodeId).catch(() => {});
  }

  // ------------------------------------------------------------------ heartbeats and placement

  private tick(): Promise<void> {
    if (this.ticking || this.stopped) return this.ticking ?? Promise.resolve();
    this.ticking = (async () => {
      try {
        await this.heartbeat();
        await this.place();
      } catch (err) {
        this.options.onError?.(err, 'cluster heartbeat and placement');
      } finally {
        this.ticking = undefined;
      }
    })();
    return this.ticking;
  }

  private async heartbeat(): Promise<void> {
    const own: NodeHeartbeat = {
      nodeId: this.nodeId,
      version: this.options.version,
      config: this.options.configDigest,
      startedAt: this.startedAt,
      heartbeatAt: new Date().toISOString(),
      routes: this.ownedRoutes(),
    };
    await this.nodes.put(this.nodeId, encoder.encode(JSON.stringify(own)));
    const beats: NodeHeartbeat[] = [];
    for await (const key of await this.nodes.keys()) {
      const e = await this.nodes.get(key);
      if (e?.operation === 'PUT') beats.push(JSON.parse(decoder.decode(e.value)) as NodeHeartbeat);
    }
    if (!beats.some((b) => b.nodeId === this.nodeId)) beats.push(own);
    this.heartbeats = beats.sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
    for (const b of beats) {
      if (b.config === this.options.configDigest || this.mismatched.has(b.nodeId)) continue;
      this.mismatched.add(b.nodeId);
      this.options.onConfigMismatch?.(b.nodeId);
    }
    this.live = this.heartbeats.map((b) => b.nodeId);
    for (const node of [...this.aliveTicks.keys()])
      if (!this.live.includes(node)) this.aliveTicks.delete(node);
    for (const node of this.live) this.aliveTicks.set(node, (this.aliveTicks.get(node) ?? 0) + 1);
  }

  private async place(): Promise<void> {
    const view = { self: this.nodeId, liveNodes: this.live };
    for (const [route, slot] of this.slots) {
      if (this.stopped) return;
      const keeper = slot.keeper;
      if (keeper?.maySend()) {
        if (shouldHandOver(slot.placementKey, view, (n) => this.aliveTicks.get(n) ?? 0)) {
          slot.keeper = undefined;
          this.counters.handedOver++;
          this.options.onLeaseChange?.(route, false, 'handed-over');
          await keeper.stop();
        }
        continue;
      }
      const entry = await this.leases.get(route);
      if (entry) {
        slot.freeChecks = 0;
        // Someone else holds it: stop asking until it is free again.
        if (keeper && entry.value.owner !== this.nodeId && keeper.state.kind === 'idle') {
          slot.keeper = undefined;
          await keeper.stop();
        }
        continue;
      }
      slot.freeChecks++;
      if (!keeper && shouldContend(slot.placementKey, view, slot.freeChecks)) this.contend(route, slot);
    }
  }

  private contend(route: string, slot: Slot): void {
    if (this.stopped) return;
    const keeper = new LeaseKeeper(this.leases, route, this.nodeId, {
      leaseTtlMs: this.ttl,
      onChange: (may) => this.onLease(route, slot, keeper, may),
      onRenewal: this.options.onRenewal,
    });
    slot.keeper = keeper;
    this.options.store.fenceProgress(route, () =>
      slot.keeper === keeper ? keeper.fencingToken() : undefined,
    );
    keeper.start();
  }

  private onLease(route: string, slot: Slot, keeper: LeaseKeeper, may: boolean): void {
    if (may) {
      this.counters.acquired++;
      this.options.onLeaseChange?.(route, true, 'acquired');
      // The previous owner's last saves are in KV (or fenced off): read them, then run.
      this.enqueue(slot, async () => {
        if (!keeper.maySend()) return;
        await this.options.store.reloadRoute(route);
        slot.owned = true;
        await this.assign?.(route, true);
      });
      return;
    }
    if (slot.keeper === keeper && !this.stopped) {
      this.counters.lost++;
      this.options.onLeaseChange?.(route, false, 'lost');
    }
    this.enqueue(slot, async () => {
      if (!slot.owned) return;
      slot.owned = false;
      await this.assign?.(route, false);
    });
  }

  private enqueue(slot: Slot, step: () => Promise<void>): void {
    slot.chain = slot.chain
      .then(step)
      .catch((err: unknown) => this.options.onError?.(err, 'cluster route assignment'));
  }

  /** Reads the saved state of routes owned elsewhere again, when it changed. */
  private refreshStandby(): void {
    for (const [route, slot] of this.slots) {
      if (slot.owned || this.stopped) continue;
      this.enqueue(slot, async () => {
        if (slot.owned || this.stopped) return;
        if (await this.options.store.reloadRoute(route, { ifChanged: true }))
          await this.assign?.(route, false);
      });
    }
  }

  // ------------------------------------------------------------------ route actions

  /** The node owning `route` now (from its lease), or undefined. */
  async ownerOf(route: string): Promise<string | undefined> {
    if (this.maySend(route)) return this.nodeId;
    const entry = await this.leases.get(route);
    return entry?.value.owner;
  }

  /** Answers route actions other nodes send here with `run` (which acts on this node's engine). */
  serve(run: (route: string, command: RouteCommand) => Promise<unknown>): void {
    this.commands = this.options.nc.subscribe(`${this.options.prefix}.cmd.${this.nodeId}`, {
      callback: (err, msg) => {
        if (err) return;
        void (async () => {
          let reply: unknown;
          try {
            const { route, command } = JSON.parse(decoder.decode(msg.data)) as {
              route: string;
              command: RouteCommand;
            };
            if (!this.maySend(route)) throw new ClusterRouteUnownedError(route, this.ttl);
            reply = { ok: true, result: await run(route, command) };
          } catch (e) {
            const we = e instanceof WaystationError ? e : undefined;
            reply = {
              ok: false,
              error: {
                code: we?.code ?? 'WS_ERR_INTERNAL',
                message: (e as Error).message,
                status: we?.httpStatus ?? 500,
              },
            };
          }
          msg.respond(encoder.encode(JSON.stringify(reply)));
        })();
      },
    });
  }

  /** Sends an action to the route's owner and returns its answer (errors as the owner raised them). */
  async request(route: string, owner: string, command: RouteCommand): Promise<unknown> {
    let answer: { ok: boolean; result?: unknown; error?: { code: string; message: string; status: number } };
    try {
      const msg = await this.options.nc.request(
        `${this.options.prefix}.cmd.${owner}`,
        encoder.encode(JSON.stringify({ route, command })),
        { timeout: REQUEST_TIMEOUT_MS },
      );
      answer = JSON.parse(decoder.decode(msg.data));
    } catch (err) {
      throw new ClusterUnavailableError(
        `Route "${route}": its owner ${owner} did not answer the ${command.type} action`,
        {
          cause: err,
          mayHaveCommitted: command.type !== 'snapshot',
        },
      );
    }
    if (answer.ok) return answer.result;
    throw new RemoteRouteError(answer.error!);
  }

  // ------------------------------------------------------------------ visibility

  async view(): Promise<ClusterView> {
    const owners: Record<string, string | null> = {};
    for (const route of this.slots.keys())
      owners[route] = (await this.ownerOf(route).catch(() => undefined)) ?? null;
    const nc = this.options.nc;
    return {
      nodeId: this.nodeId,
      nodes: this.heartbeats.map((h) => ({
        ...h,
        self: h.nodeId === this.nodeId,
        sameConfig: h.config === this.options.configDigest,
      })),
      owners,
      nats: { connected: !nc.isClosed(), server: nc.getServer(), serverVersion: nc.info?.version },
      leaseTtlMs: this.ttl,
    };
  }
}

/** An error a route's owner raised for an action sent to it, with the owner's code and status. */
export class RemoteRouteError extends WaystationError {
  constructor(error: { code: string; message: string; status: number }) {
    super(error.code as WaystationError['code'], error.message, { httpStatus: error.status });
  }
}
