/**
 * Turns a configuration object into what the layers need: validated by the schema, then
 * checked across keys (IBM's runtime validator: dangling references, bad names, impossible
 * limits), each problem reported with its config path.
 */
import type { z } from 'zod';
import type { RouteOptions } from '../delivery/route-options.js';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { STREAM_NAME } from '../store/message.js';
import { configSchema, type RouteConfig, type WaystationConfig } from './schema.js';

export interface ResolvedConfig {
  config: WaystationConfig;
  /** Declared streams plus those routes read. */
  streams: string[];
  routes: RouteOptions[];
}

export function parseConfig(input: unknown): ResolvedConfig {
  const parsed = configSchema.safeParse(input ?? {});
  if (!parsed.success) throw new ConfigError(zodIssues(parsed.error));
  const config = parsed.data;
  const issues: ConfigIssue[] = [];
  const streams = new Set(Object.keys(config.streams));
  for (const [name, route] of Object.entries(config.routes)) {
    if (!(route.target in config.targets)) {
      const known = Object.keys(config.targets);
      issues.push({
        path: `routes.${name}.target`,
        message: `no target named "${route.target}"${known.length ? `; targets are ${known.join(', ')}` : '; declare it under "targets"'}`,
      });
    }
    route.streams.forEach((s, i) => {
      streams.add(s);
      if (route.streams.indexOf(s) !== i)
        issues.push({ path: `routes.${name}.streams[${i}]`, message: `"${s}" is listed twice` });
    });
    if (route.probeIntervalMax < route.probeInterval) {
      issues.push({
        path: `routes.${name}.probeIntervalMax`,
        message: `must be at least probeInterval (${route.probeInterval} ms)`,
      });
    }
    if (route.retry.backoffMax < route.retry.backoff) {
      issues.push({
        path: `routes.${name}.retry.backoffMax`,
        message: `must be at least retry.backoff (${route.retry.backoff} ms)`,
      });
    }
    if (
      route.onFull === 'reject-new' &&
      route.retention.maxMessages === undefined &&
      route.retention.maxBytes === undefined
    ) {
      issues.push({
        path: `routes.${name}.onFull`,
        message: 'reject-new needs a limit: set retention.maxMessages or retention.maxBytes',
      });
    }
  }
  for (const s of streams) {
    if (!STREAM_NAME.test(s) || s.includes('..')) {
      issues.push({
        path: `streams.${s}`,
        message: 'stream names use 1-128 letters, digits, "_", "." and "-", starting with a letter or digit',
      });
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  const routes = Object.entries(config.routes).map(([name, r]) => toRouteOptions(name, r));
  return { config, streams: [...streams], routes };
}

function toRouteOptions(name: string, r: RouteConfig): RouteOptions {
  return {
    name,
    streams: r.streams,
    target: r.target,
    ordering: r.ordering,
    storeAndForward: r.storeAndForward,
    storeAfterFailures: r.storeAfter.failures,
    probeIntervalMs: r.probeInterval,
    probeIntervalMaxMs: r.probeIntervalMax,
    replayRatePerSecond: r.replay.ratePerSecond,
    retryAttempts: r.retry.attempts,
    retryBackoffMs: r.retry.backoff,
    retryBackoffMaxMs: r.retry.backoffMax,
    maxAgeMs: r.retention.maxAge,
    maxMessages: r.retention.maxMessages,
    maxBytes: r.retention.maxBytes,
    onFull: r.onFull,
    cleanupIntervalMs: r.cleanupInterval,
    group: r.group,
    batchMaxMessages: r.batch.maxMessages,
    batchMaxBytes: r.batch.maxBytes,
    batchMaxWaitMs: r.batch.maxWait,
    maxInFlight: r.maxInFlight,
    attemptTimeoutMs: r.timeout,
  };
}

function zodIssues(error: z.ZodError): ConfigIssue[] {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join('.'),
    message:
      issue.code === 'unrecognized_keys'
        ? `unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`
        : issue.message,
  }));
}
