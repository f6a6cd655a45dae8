/**
 * The plug-in point: a user's own ES module (JavaScript, or TypeScript under a loader) that
 * exports `createTarget(options, context)` — named or default — returning an object with
 * `deliver(batch, signal)` and optionally `start()` / `stop()` (see docs/targets.md and
 * examples/module-target/).
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import type { Target } from '../delivery/target.js';
import { TargetModuleError } from '../errors.js';

export interface ModuleTargetContext {
  /** The target's name in the configuration. */
  name: string;
  logger: Logger;
  /** Directory relative paths in the configuration resolve against (the config file's). */
  baseDir: string;
}

export type TargetFactory = (
  options: Record<string, unknown>,
  context: ModuleTargetContext,
) => Target | Promise<Target>;

export async function loadModuleTarget(
  name: string,
  path: string,
  options: Record<string, unknown>,
  context: ModuleTargetContext,
  baseDir: string,
): Promise<Target> {
  const file = isAbsolute(path) ? path : resolve(baseDir, path);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw new TargetModuleError(name, `cannot load module ${file}: ${(err as Error).message}`, err);
  }
  const factory = (mod.createTarget ?? mod.default) as TargetFactory | undefined;
  if (typeof factory !== 'function') {
    throw new TargetModuleError(
      name,
      `module ${file} exports no createTarget(options, context) function (named or default).`,
    );
  }
  const target = await factory(options, context);
  if (!target || typeof target.deliver !== 'function') {
    throw new TargetModuleError(
      name,
      `createTarget() of ${file} returned no object with a deliver(batch, signal) method.`,
    );
  }
  return target;
}
