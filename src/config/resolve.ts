/**
 * Turns a configuration object into what the layers need: validated by the schema, then
 * checked across keys (IBM's runtime validator: dangling references, bad names, impossible
 * limits), each problem reported with its config path.
 */
import type { z } from 'zod';
import type { RouteOptions } from '../delivery/route-options.js';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { aclProblems } from '../ingest/mqtt/auth.js';
import { topicFilterProblem } from '../ingest/mqtt/topic.js';
import { STREAM_NAME } from '../store/message.js';
import { configSchema, type RouteConfig, type WaystationConfig } from './schema.js';

type MqttConfig = NonNullable<WaystationConfig['mqtt']>;

export interface ResolvedConfig {
  config: WaystationConfig;
  /** Questionable but allowed combinations (IBM validator warnings): print them, start anyway. */
  warnings: ConfigIssue[];
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
  if (config.mqtt) issues.push(...mqttIssues(config.mqtt, streams));
  if (config.cluster) issues.push(...clusterIssues(config));
  for (const s of streams) {
    if (!STREAM_NAME.test(s) || s.includes('..')) {
      issues.push({
        path: `streams.${s}`,
        message: 'stream names use 1-128 letters, digits, "_", "." and "-", starting with a letter or digit',
      });
    }
  }
  if (config.auth.tokens.length === 0 && !isLoopback(config.http.listen)) {
    issues.push({
      path: 'http.listen',
      message: `"${config.http.listen}" is reachable from other hosts but no auth.tokens are configured; add tokens (waystation hash-token) or listen on 127.0.0.1`,
    });
  }
  const names = config.auth.tokens.map((t) => t.name);
  names.forEach((n, i) => {
    if (names.indexOf(n) !== i)
      issues.push({ path: `auth.tokens[${i}].name`, message: `"${n}" is used by another token` });
  });
  if (issues.length > 0) throw new ConfigError(issues);
  const routes = Object.entries(config.routes).map(([name, r]) =>
    toRouteOptions(name, r, config.targets[r.target]?.maxBytesPerSecond, config.delivery?.maxBytesPerSecond),
  );
  return { config, warnings: warningsFor(config), streams: [...streams], routes };
}

/** Store-and-forward topics add their streams to `streams`. */
function mqttIssues(mqtt: MqttConfig, streams: Set<string>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const filters = new Map<string, number>();
  const topicStreams = new Map<string, number>();
  mqtt.storeAndForwardTopics.forEach((t, i) => {
    const at = `mqtt.storeAndForwardTopics[${i}]`;
    const problem =
      topicFilterProblem(t.topic) ?? (t.topic.startsWith('$') ? 'must not start with "$"' : undefined);
    if (problem) issues.push({ path: `${at}.topic`, message: problem });
    const f = filters.get(t.topic);
    if (f !== undefined) issues.push({ path: `${at}.topic`, message: `"${t.topic}" is also topic [${f}]` });
    filters.set(t.topic, i);
    const s = topicStreams.get(t.stream);
    if (s !== undefined)
      issues.push({ path: `${at}.stream`, message: `stream "${t.stream}" already belongs to topic [${s}]` });
    topicStreams.set(t.stream, i);
    streams.add(t.stream);
  });
  const users = mqtt.users.map((u) => u.username);
  users.forEach((u, i) => {
    if (users.indexOf(u) !== i)
      issues.push({ path: `mqtt.users[${i}].username`, message: `"${u}" is listed twice` });
  });
  mqtt.users.forEach((u, i) => {
    issues.push(...aclProblems(u, `mqtt.users[${i}]`));
  });
  if (mqtt.anonymous) issues.push(...aclProblems(mqtt.anonymous, 'mqtt.anonymous'));
  if (mqtt.maxPacketSize > 268_435_455)
    issues.push({ path: 'mqtt.maxPacketSize', message: "at most 268435455 bytes (MQTT's own limit)" });
  return issues;
}

/** What cluster mode cannot do (yet), and limits that contradict each other. */
function clusterIssues(config: WaystationConfig): ConfigIssue[] {
  const cluster = config.cluster!;
  const issues: ConfigIssue[] = [];
  if ((config.mqtt?.storeAndForwardTopics.length ?? 0) > 0) {
    issues.push({
      path: 'mqtt.storeAndForwardTopics',
      message:
        "not supported in cluster mode yet: their subscribers' positions are node-local (docs/cluster.md); publish over HTTP or the library, or run the broker on a single node",
    });
  }
  if (config.storage.dedupWindow < cluster.publishTimeout) {
    issues.push({
      path: 'storage.dedupWindow',
      message: `must be at least cluster.publishTimeout (${cluster.publishTimeout} ms): a publish retried after an unanswered PubAck could otherwise be stored twice`,
    });
  }
  if (cluster.leaseTtl < 1000) {
    issues.push({
      path: 'cluster.leaseTtl',
      message: 'at least 1s: renewals must fit within it over a real network',
    });
  }
  return issues;
}

function warningsFor(config: WaystationConfig): ConfigIssue[] {
  const warnings: ConfigIssue[] = [];
  if (config.cluster?.nats.replicas === 1) {
    warnings.push({
      path: 'cluster.nats.replicas',
      message:
        '1: every stream and bucket lives on one nats-server; losing it loses acknowledged messages (use 3)',
    });
  }
  if (config.cluster) {
    for (const key of ['maxBytes', 'minFreeBytes'] as const) {
      if (config.storage[key] !== undefined)
        warnings.push({
          path: `storage.${key}`,
          message:
            'has no effect in cluster mode: JetStream holds the streams (limit them on the nats-servers)',
        });
    }
  }
  if (config.mqtt?.allowAnonymous && !isLoopback(config.mqtt.listen)) {
    warnings.push({
      path: 'mqtt.allowAnonymous',
      message: `anyone who reaches ${config.mqtt.listen} may publish and subscribe without a password`,
    });
  }
  if (config.mqtt && !config.mqtt.allowAnonymous && config.mqtt.users.length === 0) {
    warnings.push({
      path: 'mqtt.users',
      message: 'no users and allowAnonymous is false: every MQTT client will be refused',
    });
  }
  if (config.storage.fsync === 'never') {
    warnings.push({
      path: 'storage.fsync',
      message:
        'never: accepted messages can be lost on power failure; "always" (default) or "interval" bound the loss',
    });
  }
  for (const [name, r] of Object.entries(config.routes)) {
    const at = `routes.${name}`;
    if (r.ordering === 'lifo' && r.group !== undefined) {
      warnings.push({
        path: `${at}.ordering`,
        message: 'lifo in a group: the group drains together, newest first on this route only',
      });
    }
    if (r.ordering === 'fifo' && r.maxInFlight > 1) {
      warnings.push({
        path: `${at}.maxInFlight`,
        message: `${r.maxInFlight} batches in flight: a failed batch is retried after later ones, so fifo holds only within a batch; use 1 for strict order`,
      });
    }
    if (!r.storeAndForward && (r.replay.bytesPerSecond ?? 0) > 0) {
      warnings.push({
        path: `${at}.replay.bytesPerSecond`,
        message: 'has no effect with storeAndForward: false (there is no backlog replay)',
      });
    }
    if (!r.storeAndForward && r.replay.ratePerSecond > 0) {
      warnings.push({
        path: `${at}.replay.ratePerSecond`,
        message: 'has no effect with storeAndForward: false (there is no backlog replay)',
      });
    }
    if (r.retention.maxAge !== undefined && r.retention.maxAge < r.probeIntervalMax) {
      warnings.push({
        path: `${at}.retention.maxAge`,
        message: `shorter than probeIntervalMax (${r.probeIntervalMax} ms): stored messages may expire between two probes`,
      });
    }
    if (
      config.storage.maxBytes !== undefined &&
      r.retention.maxBytes !== undefined &&
      r.retention.maxBytes > config.storage.maxBytes
    ) {
      warnings.push({
        path: `${at}.retention.maxBytes`,
        message: `larger than storage.maxBytes (${config.storage.maxBytes}): the global limit refuses publishes first`,
      });
    }
  }
  return warnings;
}

export function isLoopback(listen: string): boolean {
  const host = listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** `targetRate`, `gatewayRate`: the shared byte budgets on the route's path (bytes/s), if any. */
function toRouteOptions(
  name: string,
  r: RouteConfig,
  targetRate: number | undefined,
  gatewayRate: number | undefined,
): RouteOptions {
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
    replayBytesPerSecond: r.replay.bytesPerSecond ?? 0,
    priority: r.priority ?? 4,
    targetMaxBytesPerSecond: targetRate,
    gatewayMaxBytesPerSecond: gatewayRate,
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
