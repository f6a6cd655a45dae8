/**
 * Builds target instances from configuration. Each type lives in its own module.
 */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { TargetConfig } from '../config/schema.js';
import type { Target } from '../delivery/target.js';
import { AmqpTarget } from './amqp-target.js';
import { FileTarget } from './file-target.js';
import { HttpTarget } from './http-target.js';
import { LogTarget } from './log-target.js';
import { loadModuleTarget } from './module-target.js';
import { MqttTarget } from './mqtt-target.js';
import { NatsTarget } from './nats-target.js';
import { NullTarget } from './null-target.js';
import { PostgresTarget } from './postgres-target.js';
import { RedisTarget } from './redis-target.js';
import { WaystationTarget } from './waystation-target.js';

export interface TargetContext {
  logger: Logger;
  /** Relative paths (module, file) resolve against this directory. */
  baseDir: string;
}

export async function createTarget(name: string, config: TargetConfig, ctx: TargetContext): Promise<Target> {
  switch (config.type) {
    case 'http':
      return new HttpTarget({
        url: config.url,
        method: config.method,
        mode: config.mode,
        headers: config.headers,
        timeoutMs: config.timeout,
        auth: config.auth,
        tls: config.tls,
        classify: config.classify,
        connections: config.connections,
        compression: config.compression,
      });
    case 'file':
      return new FileTarget({ path: resolve(ctx.baseDir, config.path), maxBytes: config.maxBytes });
    case 'log':
      return new LogTarget(name, ctx.logger);
    case 'null':
      return new NullTarget();
    case 'mqtt':
      return new MqttTarget({ ...config, timeoutMs: config.timeout });
    case 'amqp':
      return new AmqpTarget({ ...config, timeoutMs: config.timeout });
    case 'nats':
      return new NatsTarget({ ...config, timeoutMs: config.timeout });
    case 'postgres':
      return new PostgresTarget({ ...config, timeoutMs: config.timeout });
    case 'redis':
      return new RedisTarget({ ...config, timeoutMs: config.timeout });
    case 'waystation':
      return new WaystationTarget({ ...config, timeoutMs: config.timeout });
    case 'module':
      return loadModuleTarget(
        name,
        config.path,
        config.options,
        { name, logger: ctx.logger, baseDir: ctx.baseDir },
        ctx.baseDir,
      );
  }
}

export { FileTarget } from './file-target.js';
export { HttpTarget, type HttpTargetOptions } from './http-target.js';
export { LogTarget } from './log-target.js';
export type { ModuleTargetContext, TargetFactory } from './module-target.js';
export { NullTarget } from './null-target.js';
