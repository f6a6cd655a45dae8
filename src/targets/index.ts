/**
 * Builds target instances from configuration. Each type lives in its own module; those that need a
 * client library (MQTT, AMQP, NATS, PostgreSQL, Redis) are imported when a target of that type is
 * configured, so a gateway that uses none of them does not hold their code in memory.
 */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { TargetConfig } from '../config/schema.js';
import type { Target } from '../delivery/target.js';
import { FileTarget } from './file-target.js';
import { HttpTarget } from './http-target.js';
import { LogTarget } from './log-target.js';
import { loadModuleTarget } from './module-target.js';
import { NullTarget } from './null-target.js';
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
      return new (await import('./mqtt-target.js')).MqttTarget({ ...config, timeoutMs: config.timeout });
    case 'amqp':
      return new (await import('./amqp-target.js')).AmqpTarget({ ...config, timeoutMs: config.timeout });
    case 'nats':
      return new (await import('./nats-target.js')).NatsTarget({ ...config, timeoutMs: config.timeout });
    case 'postgres':
      return new (await import('./postgres-target.js')).PostgresTarget({
        ...config,
        timeoutMs: config.timeout,
      });
    case 'redis':
      return new (await import('./redis-target.js')).RedisTarget({ ...config, timeoutMs: config.timeout });
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
