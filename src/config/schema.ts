/**
 * The configuration schema: the single source of truth for what users may write (YAML, JSON
 * or the library's `Waystation.open(config)`), with defaults and units. Keys are camelCase;
 * durations and sizes are strings ("5s", "64MiB") or numbers (ms, bytes). Unknown keys are
 * errors (strict objects), so a typo never silently falls back to a default.
 */
import { z } from 'zod';
import { OnFullPolicies, Orderings } from '../delivery/route-options.js';
import { FsyncPolicies } from '../log/options.js';
import { parseDuration, parseSize } from './units.js';

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `"${v}" is not a duration; write e.g. "200ms", "5s", "10m", "7d"`,
    });
    return z.NEVER;
  }
  return ms;
});

const size = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const bytes = parseSize(v);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a size; write e.g. "512KiB", "64MiB", "1GiB"` });
    return z.NEVER;
  }
  return bytes;
});

const positiveInt = z.number().int().positive();

/**
 * A byte rate: payload bytes per second, written as a size ("200KiB" = 200 KiB/s) or a number.
 * Leave the key out for no limit (docs/delivery.md, "Byte rates and priority").
 */
const byteRate = size.refine((n) => n > 0, 'must be more than 0; leave the key out for no limit');

/**
 * Keys every target type has. `maxBytesPerSecond`: payload bytes per second to this target,
 * shared by every route that delivers to it (forwarding, replay and probes); routes share it
 * by priority with a minimum share each. Default: no limit.
 */
const targetCommon = { maxBytesPerSecond: byteRate.optional() };

export const NAME = /^[A-Za-z0-9_-]{1,128}$/;
const nameMessage = 'names use 1-128 letters, digits, "_" and "-"';

const storage = z
  .strictObject({
    fsync: z.enum(FsyncPolicies).default('always'),
    fsyncInterval: duration.default(200),
    segmentBytes: size.default(64 * 1024 * 1024),
    blobThreshold: size.default(1024 * 1024),
    writeTimeout: duration.default(10_000),
    maxBytes: size.optional(),
    minFreeBytes: size.optional(),
    dedupWindow: duration.default(120_000),
  })
  .default({
    fsync: 'always',
    fsyncInterval: 200,
    segmentBytes: 64 * 1024 * 1024,
    blobThreshold: 1024 * 1024,
    writeTimeout: 10_000,
    dedupWindow: 120_000,
  });

const classify = z
  .strictObject({
    ack: z.array(z.string()).optional(),
    nack: z.array(z.string()).optional(),
    error: z.array(z.string()).optional(),
  })
  .optional();

/** TLS of a target's client connection: PEM contents, not paths. */
const clientTls = z
  .strictObject({
    ca: z.string().optional(),
    cert: z.string().optional(),
    key: z.string().optional(),
    rejectUnauthorized: z.boolean().default(true),
  })
  .optional();

/**
 * Content-Encoding of the request bodies an http or waystation target sends (docs/targets.md):
 * gzip (level 6) or br (quality 4); none by default. Applies to batch and single requests.
 */
const compression = z.enum(['none', 'gzip', 'br']).default('none');

const httpTarget = z.strictObject({
  type: z.literal('http'),
  ...targetCommon,
  url: z.url({ protocol: /^https?$/ }),
  method: z.enum(['POST', 'PUT']).default('POST'),
  mode: z.enum(['single', 'batch']).default('single'),
  headers: z.record(z.string(), z.string()).optional(),
  timeout: duration.default(10_000),
  auth: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('basic'), username: z.string(), password: z.string() }),
      z.strictObject({ type: z.literal('bearer'), token: z.string().min(1) }),
    ])
    .optional(),
  tls: clientTls,
  classify,
  connections: positiveInt.default(8),
  compression,
});

const fileTarget = z.strictObject({
  type: z.literal('file'),
  ...targetCommon,
  path: z.string().min(1),
  maxBytes: size.default(64 * 1024 * 1024),
});

const logTarget = z.strictObject({ type: z.literal('log'), ...targetCommon });
const nullTarget = z.strictObject({ type: z.literal('null'), ...targetCommon });
const moduleTarget = z.strictObject({
  type: z.literal('module'),
  ...targetCommon,
  /** Path of an ES module exporting `createTarget(options, context)` (or a default export of it). */
  path: z.string().min(1),
  options: z.record(z.string(), z.unknown()).default({}),
});

const template = z.string().min(1);

const mqttTarget = z.strictObject({
  type: z.literal('mqtt'),
  ...targetCommon,
  url: z
    .string()
    .regex(/^(mqtts?|wss?|tcp|ssl):\/\//, 'write e.g. "mqtt://broker:1883" or "mqtts://broker:8883"'),
  topic: template.default('{stream}'),
  qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
  retain: z.boolean().default(false),
  protocolVersion: z.union([z.literal(4), z.literal(5)]).default(5),
  username: z.string().optional(),
  password: z.string().optional(),
  clientId: z.string().optional(),
  timeout: duration.default(10_000),
  tls: clientTls,
  errorCodes: z.array(z.number().int().min(0x80).max(0xff)).optional(),
  nackCodes: z.array(z.number().int().min(0x80).max(0xff)).optional(),
});

const amqpTarget = z.strictObject({
  type: z.literal('amqp'),
  ...targetCommon,
  url: z.string().regex(/^amqps?:\/\//, 'write e.g. "amqp://user:pass@rabbit:5672/vhost"'),
  exchange: z.string().default(''),
  routingKey: template.default('{stream}'),
  persistent: z.boolean().default(true),
  mandatory: z.boolean().default(true),
  unroutable: z.enum(['error', 'nack']).default('error'),
  timeout: duration.default(10_000),
});

const natsTarget = z.strictObject({
  type: z.literal('nats'),
  ...targetCommon,
  servers: z.union([z.string(), z.array(z.string()).min(1)]),
  subject: template.default('{stream}'),
  jetstream: z.boolean().default(true),
  user: z.string().optional(),
  pass: z.string().optional(),
  token: z.string().optional(),
  timeout: duration.default(10_000),
});

const postgresTarget = z.strictObject({
  type: z.literal('postgres'),
  ...targetCommon,
  connectionString: z.string().regex(/^postgres(ql)?:\/\//, 'write e.g. "postgres://user:pass@db:5432/name"'),
  table: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/, 'a plain [schema.]table name')
    .default('waystation_messages'),
  createTable: z.boolean().default(true),
  timeout: duration.default(10_000),
});

const redisTarget = z.strictObject({
  type: z.literal('redis'),
  ...targetCommon,
  url: z.string().regex(/^rediss?:\/\//, 'write e.g. "redis://127.0.0.1:6379/0"'),
  stream: template.default('{stream}'),
  maxLen: positiveInt.optional(),
  timeout: duration.default(10_000),
});

const waystationTarget = z.strictObject({
  type: z.literal('waystation'),
  ...targetCommon,
  url: z.url({ protocol: /^https?$/ }),
  stream: template.default('{stream}'),
  token: z.string().optional(),
  timeout: duration.default(10_000),
  tls: z
    .strictObject({ ca: z.string().optional(), rejectUnauthorized: z.boolean().default(true) })
    .optional(),
  compression,
});

export const targetSchema = z.discriminatedUnion('type', [
  httpTarget,
  fileTarget,
  logTarget,
  nullTarget,
  moduleTarget,
  mqttTarget,
  amqpTarget,
  natsTarget,
  postgresTarget,
  redisTarget,
  waystationTarget,
]);

const route = z.strictObject({
  streams: z.array(z.string()).min(1),
  target: z.string(),
  ordering: z.enum(Orderings).default('fifo'),
  storeAndForward: z.boolean().default(true),
  storeAfter: z.strictObject({ failures: positiveInt.default(1) }).default({ failures: 1 }),
  probeInterval: duration.default(5_000),
  probeIntervalMax: duration.default(300_000),
  replay: z
    .strictObject({
      /** Messages per second while draining the backlog; 0 = unlimited. */
      ratePerSecond: z.number().min(0).default(0),
      /** Payload bytes per second while draining the backlog ("64KiB"); 0 or absent = unlimited. */
      bytesPerSecond: size.optional(),
    })
    .default({ ratePerSecond: 0 }),
  /**
   * 0 (highest) … 9 (lowest), default 4: where routes share a byte budget (a target's or the
   * gateway's maxBytesPerSecond), the lower number goes first; every waiting route keeps a
   * minimum share (10 %, or an equal share when more than ten wait). Default 4.
   */
  priority: z.number().int().min(0).max(9).optional(),
  retry: z
    .strictObject({
      attempts: positiveInt.default(3),
      backoff: duration.default(1_000),
      backoffMax: duration.default(60_000),
    })
    .default({ attempts: 3, backoff: 1_000, backoffMax: 60_000 }),
  retention: z
    .strictObject({
      maxAge: duration.optional(),
      maxMessages: positiveInt.optional(),
      maxBytes: size.optional(),
    })
    .default({}),
  onFull: z.enum(OnFullPolicies).default('drop-oldest'),
  cleanupInterval: duration.default(60_000),
  group: z.string().regex(NAME, nameMessage).optional(),
  batch: z
    .strictObject({
      maxMessages: positiveInt.default(1),
      maxBytes: size.default(1024 * 1024),
      maxWait: duration.default(0),
    })
    .default({ maxMessages: 1, maxBytes: 1024 * 1024, maxWait: 0 }),
  maxInFlight: positiveInt.default(1),
  timeout: duration.default(30_000),
});

const listen = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'write "host:port", e.g. "127.0.0.1:8080"');

const http = z.strictObject({
  /** "host:port" the HTTP API listens on. Default 127.0.0.1:8080. */
  listen: listen.default('127.0.0.1:8080'),
  /** Largest single-message body; larger publishes get 413. Default 2 GiB. */
  maxBodyBytes: size.default(2 * 1024 ** 3),
  /** Largest NDJSON batch body (parsed in memory). Default 64 MiB. */
  maxBatchBytes: size.default(64 * 1024 ** 2),
  /**
   * A request body that sends nothing for this long is ended with 408 and nothing of it is
   * stored (its staging file removed). Default 30s.
   */
  bodyTimeout: duration.default(30_000),
  /**
   * Request bodies being received at once (declared Content-Length, or bytes so far) may add up
   * to this much; past it a publish is refused with 503 WS_ERR_HTTP_STAGING_FULL. Default 4 GiB.
   */
  maxStagingBytes: size.default(4 * 1024 ** 3),
  tls: z
    .strictObject({
      /** Paths of PEM files. */
      cert: z.string(),
      key: z.string(),
      ca: z.string().optional(),
      /** Ask clients for a certificate signed by `ca` (mutual TLS). */
      requestClientCert: z.boolean().default(false),
    })
    .optional(),
});

export const Scopes = ['publish', 'read', 'admin'] as const;

const auth = z.strictObject({
  tokens: z
    .array(
      z.strictObject({
        name: z.string().regex(NAME, nameMessage),
        /** From `waystation hash-token`: "hmac-sha256$<salt b64>$<hash b64>". */
        tokenHash: z.string().superRefine((v, ctx) => {
          if (v.startsWith('scrypt$'))
            ctx.addIssue({
              code: 'custom',
              message:
                'scrypt token hashes (Waystation 0.1) cost ~50 ms of the event loop per check; run `waystation hash-token <token>` again and configure the hmac-sha256 hash it prints',
            });
          else if (!/^hmac-sha256\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/.test(v))
            ctx.addIssue({ code: 'custom', message: 'use the output of `waystation hash-token`' });
        }),
        scopes: z.array(z.enum(Scopes)).min(1),
        /** Stream name globs this token may publish to / read ("*" = all). Default all. */
        streams: z.array(z.string()).default(['*']),
      }),
    )
    .default([]),
});

export const RetentionUnits = ['minute', 'hour', 'day', 'week', 'month', 'year'] as const;

/** A store-and-forward topic (FairCom EDGE semantics); also the body of POST /v1/mqtt/topics. */
export const storeAndForwardTopicSchema = z.strictObject({
  /** Topic filter: publishes matching it are stored; subscribers to exactly this filter are tracked. */
  topic: z.string().min(1),
  /** Stream holding the messages; routes may read it too. */
  stream: z.string().min(1),
  retention: z
    .union([z.literal('forever'), z.strictObject({ period: positiveInt, unit: z.enum(RetentionUnits) })])
    .default('forever'),
  maxDeliveryRatePerSecond: positiveInt.default(100),
  newSubscriberDeliveryMode: z.enum(['NewMessages', 'StoredMessages']).default('NewMessages'),
  newSubscriberMaxStoredMessages: z.union([z.literal('all'), z.number().int().nonnegative()]).default(1000),
});

export type StoreAndForwardTopicInput = z.input<typeof storeAndForwardTopicSchema>;
export type StoreAndForwardTopicConfig = z.output<typeof storeAndForwardTopicSchema>;

/** A client's permissions (a user's, or the anonymous clients'): lists of topic filters. */
const mqttAcl = {
  /** Topic filters the client may publish to. Default all. */
  publish: z.array(z.string()).default(['#']),
  /** Topic filters the client may subscribe to (a subscription must lie within one). Default all. */
  subscribe: z.array(z.string()).default(['#']),
  /** Refused: a subscription lying within one of these; never delivered: a message whose topic matches one. Default none. */
  denySubscribe: z.array(z.string()).default([]),
};

const mqtt = z.strictObject({
  /** "host:port" of the MQTT listener; port 0 picks a free one. */
  listen: z.string().regex(/:\d+$/, 'write "host:port", e.g. "127.0.0.1:1883"').default('127.0.0.1:1883'),
  /** Clients without a username may connect (and publish/subscribe to everything). */
  allowAnonymous: z.boolean().default(false),
  users: z
    .array(
      z.strictObject({
        username: z.string().min(1),
        /** From `waystation hash-password <password>`. */
        passwordHash: z
          .string()
          .regex(
            /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/,
            'use the output of `waystation hash-password`',
          ),
        ...mqttAcl,
      }),
    )
    .default([]),
  /** What clients without a username may do (with allowAnonymous). Absent: everything. */
  anonymous: z.strictObject(mqttAcl).optional(),
  tls: z
    .strictObject({
      /** "host:port" of the MQTT-over-TLS listener (commonly port 8883). */
      listen: z.string().regex(/:\d+$/, 'write "host:port", e.g. "0.0.0.0:8883"'),
      /** Paths of PEM files. */
      cert: z.string(),
      key: z.string(),
      ca: z.string().optional(),
      requestClientCert: z.boolean().default(false),
    })
    .optional(),
  websocket: z
    .strictObject({
      /** "host:port" of the MQTT-over-WebSocket listener (path /mqtt). */
      listen: z.string().regex(/:\d+$/, 'write "host:port", e.g. "127.0.0.1:8083"'),
      path: z.string().startsWith('/').default('/mqtt'),
    })
    .optional(),
  /** Messages queued per offline session for ordinary (not store-and-forward) topics; overflow is counted. */
  maxQueuedMessages: positiveInt.default(1000),
  /** Payload bytes queued per offline session for ordinary topics; beyond, messages are dropped and counted. */
  maxQueuedBytes: size.default(64 * 1024 * 1024),
  /** Largest packet accepted (and announced to MQTT 5 clients). MQTT's own limit is 268435455. */
  maxPacketSize: size.default(16 * 1024 * 1024),
  /** QoS 1/2 messages in flight to one client when it does not announce a Receive Maximum. */
  receiveMaximum: positiveInt.max(65535).default(100),
  /** Longest session expiry granted (MQTT 5) and kept for 3.1.1 persistent sessions. */
  maxSessionExpiry: duration.default(24 * 3600_000),
  /**
   * Longest keep-alive an MQTT 5 client may use, in whole seconds ("60s"; a bare number is ms):
   * one asking for none or more is told this as Server Keep Alive. 0 = accept the client's.
   */
  maxKeepAlive: duration
    .refine(
      (ms) => ms % 1000 === 0 && ms <= 65_535_000,
      'MQTT keep-alive is whole seconds up to 65535s and a bare number is milliseconds: write e.g. "60s"',
    )
    .default(0),
  /**
   * The MQTT 5 SUBACK code for a subscription the client's ACL refuses: 0x87 Not authorized, or
   * 0x80 Unspecified error for clients that take no other failure code (Eclipse Paho Python's
   * MQTT 5 client). MQTT 3.1.1 has only 0x80.
   */
  deniedSubscriptionReason: z.enum(['notAuthorized', 'unspecified']).default('notAuthorized'),
  storeAndForwardTopics: z.array(storeAndForwardTopicSchema).default([]),
});

/**
 * Cluster mode (docs/cluster.md): streams, route state and dead letters live in NATS JetStream,
 * shared by every node with the same configuration. Absent: the embedded log, nothing changes.
 */
const cluster = z.strictObject({
  /** Unique per node; default: the host name. */
  nodeId: z.string().regex(NAME, nameMessage).optional(),
  /** Starts the name of every JetStream object, so several installations can share one NATS cluster. */
  prefix: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,32}$/, '1-32 letters, digits, "_" and "-"')
    .default('waystation'),
  nats: z.strictObject({
    servers: z.union([z.string(), z.array(z.string()).min(1)]),
    /** For every stream and KV bucket; 1 is allowed (warned). */
    replicas: z.number().int().min(1).max(5).default(3),
    /** Also connect to the servers the NATS cluster advertises (false: only to `servers`, e.g. behind NAT or a proxy). */
    discoverServers: z.boolean().default(true),
    user: z.string().optional(),
    pass: z.string().optional(),
    token: z.string().optional(),
    /** TLS to the NATS servers: PEM files (relative to the configuration file); `cert` and `key` for mutual TLS. */
    tls: z
      .strictObject({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional() })
      .optional(),
  }),
  /** A route's owner must renew its lease within this. */
  leaseTtl: duration.default(10_000),
  /** How long a publish keeps trying through NATS reconnects and leader elections before 503. */
  publishTimeout: duration.default(10_000),
});

export const configSchema = z.strictObject({
  dataDir: z.string().min(1).default('./data'),
  storage,
  http: http.default({
    listen: '127.0.0.1:8080',
    maxBodyBytes: 2 * 1024 ** 3,
    maxBatchBytes: 64 * 1024 ** 2,
    bodyTimeout: 30_000,
    maxStagingBytes: 4 * 1024 ** 3,
  }),
  /** The embedded MQTT broker (docs/mqtt.md); it runs only when this key is present. */
  mqtt: mqtt.optional(),
  auth: auth.default({ tokens: [] }),
  shutdownTimeout: duration.default(10_000),
  streams: z.record(z.string(), z.strictObject({}).default({})).default({}),
  targets: z.record(z.string().regex(NAME, nameMessage), targetSchema).default({}),
  routes: z.record(z.string().regex(NAME, nameMessage), route).default({}),
  cluster: cluster.optional(),
  /** Gateway-wide delivery limits (docs/delivery.md). */
  delivery: z
    .strictObject({
      /** Payload bytes per second to all targets together, shared by every route by priority. Default: no limit. */
      maxBytesPerSecond: byteRate.optional(),
    })
    .optional(),
});

/** What users write (durations and sizes as strings or numbers, most keys optional). */
export type WaystationConfigInput = z.input<typeof configSchema>;
/** The same after parsing: every default filled in, durations in ms, sizes in bytes. */
export type WaystationConfig = z.output<typeof configSchema>;
export type TargetConfig = z.output<typeof targetSchema>;
export type RouteConfig = WaystationConfig['routes'][string];
export type ClusterConfig = NonNullable<WaystationConfig['cluster']>;
