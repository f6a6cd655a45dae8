import { pino } from 'pino';
import type { DeliveryEngine } from '../../src/delivery/engine.js';
import type { RouteRunner } from '../../src/delivery/route-runner.js';
import { type Target, Waystation, type WaystationConfigInput } from '../../src/index.js';
import type { WaystationOptions } from '../../src/waystation.js';
import { FakeClock } from './fake-clock.js';
import { MemFileSystem } from './mem-fs.js';
import { ScriptedTarget } from './scripted-target.js';

export interface Sim {
  ws: Waystation;
  clock: FakeClock;
  fs: MemFileSystem;
  targets: Record<string, ScriptedTarget>;
  /** Closes and opens again on the same (in-memory) disk, keeping the targets. */
  restart(): Promise<void>;
  /** Closes, letting fake time pass so that the shutdown grace can end attempts still out. */
  close(): Promise<void>;
  publish(stream: string, ...texts: string[]): Promise<string[]>;
  state(route: string): Promise<string>;
}

export interface SimOptions {
  /** Check liveness (livenessViolation) for every route after each step of the clock. Default true. */
  liveness?: boolean;
  logger?: WaystationOptions['logger'];
  observe?: WaystationOptions['observe'];
}

/**
 * A Waystation on an in-memory disk with a fake clock and scripted targets (one per target
 * name in the config, whatever its type there). After every `clock.advance`, each open route
 * whose target is `up` must be live (see livenessViolation), or the advance fails.
 */
export async function openSim(
  config: WaystationConfigInput,
  fs = new MemFileSystem(),
  options: SimOptions = {},
): Promise<Sim> {
  const clock = new FakeClock();
  const targets: Record<string, ScriptedTarget> = {};
  for (const name of Object.keys(config.targets ?? {})) targets[name] = new ScriptedTarget();
  let isOpen = false;
  const open = async () => {
    const ws = await Waystation.open(
      { dataDir: '/data', ...config },
      {
        clock,
        fileSystem: fs,
        targets: targets as Record<string, Target>,
        logger: options.logger ?? pino({ level: 'silent' }),
        random: () => 0.5,
        observe: options.observe,
      },
    );
    isOpen = true;
    const close = ws.close.bind(ws);
    ws.close = () => {
      isOpen = false;
      return close();
    };
    return ws;
  };
  if (options.liveness ?? true) {
    const advance = clock.advance.bind(clock);
    clock.advance = async (ms: number) => {
      await advance(ms);
      if (!isOpen) return;
      for (const [name, route] of Object.entries(config.routes ?? {})) {
        if (targets[route.target]?.behaviour !== 'up') continue;
        const why = await livenessViolation(sim.ws, name);
        if (why !== undefined) throw new Error(`liveness: ${why}`);
      }
    };
  }
  const sim: Sim = {
    ws: await open(),
    clock,
    fs,
    targets,
    async restart() {
      await sim.close();
      sim.ws = await open();
      await clock.advance(0);
    },
    async close() {
      let closed = false;
      const closing = sim.ws.close().finally(() => {
        closed = true;
      });
      while (!closed) await clock.advance(1_000);
      await closing;
    },
    async publish(stream, ...texts) {
      const ids: string[] = [];
      for (const t of texts) ids.push((await sim.ws.publish(stream, Buffer.from(t))).id);
      await clock.advance(0);
      return ids;
    },
    async state(route) {
      return (await sim.ws.route(route).snapshot()).state;
    },
  };
  return sim;
}

export const texts = (n: number, prefix = 'm') => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);

/** The runner behind a route (tests only: the library exposes RouteHandle). */
export function runnerOf(ws: Waystation, route: string): RouteRunner {
  return (ws as unknown as { engine: DeliveryEngine }).engine.route(route);
}

/**
 * Liveness (issue 15): a route with pending messages that is free to send (not held, no dead
 * letter blocking its keys, a target that acks) always has a delivery in flight younger than
 * its timeout, or a timer armed that will send or probe. Returns what is wrong, or undefined.
 */
export async function livenessViolation(ws: Waystation, route: string): Promise<string | undefined> {
  const runner = runnerOf(ws, route);
  const snap = await runner.snapshot();
  if (snap.inQueue + snap.inFlight === 0 || snap.state === 'held' || snap.cause === 'group') return undefined;
  // In key ordering a dead letter blocks its key until an operator acts: not a stall.
  if (snap.ordering === 'key' && snap.deadLettered > 0 && runner.deadLetters().length > 0) return undefined;
  const a = runner.activity();
  const timeout = runner.options.attemptTimeoutMs;
  if (a.attemptAgesMs.some((age) => age > timeout))
    return `route ${route}: an attempt is in flight for ${Math.max(...a.attemptAgesMs)} ms, past its ${timeout} ms timeout`;
  if (a.attemptAgesMs.length > 0 || a.timerArmed) return undefined;
  return `route ${route} (${snap.state}) has ${snap.inQueue} pending message(s), nothing in flight, no timer armed${a.picking ? ' and a pick that never ends' : ''}`;
}
