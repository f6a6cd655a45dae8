import { pino } from 'pino';
import { type Target, Waystation, type WaystationConfigInput } from '../../src/index.js';
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
  publish(stream: string, ...texts: string[]): Promise<string[]>;
  state(route: string): Promise<string>;
}

/**
 * A Waystation on an in-memory disk with a fake clock and scripted targets (one per target
 * name in the config, whatever its type there).
 */
export async function openSim(config: WaystationConfigInput, fs = new MemFileSystem()): Promise<Sim> {
  const clock = new FakeClock();
  const targets: Record<string, ScriptedTarget> = {};
  for (const name of Object.keys(config.targets ?? {})) targets[name] = new ScriptedTarget();
  const open = () =>
    Waystation.open(
      { dataDir: '/data', ...config },
      {
        clock,
        fileSystem: fs,
        targets: targets as Record<string, Target>,
        logger: pino({ level: 'silent' }),
        random: () => 0.5,
      },
    );
  const sim: Sim = {
    ws: await open(),
    clock,
    fs,
    targets,
    async restart() {
      await sim.ws.close();
      sim.ws = await open();
      await clock.advance(0);
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
