/**
 * The composition root of the gateway program: configuration file (or the embedded default) →
 * the library's Waystation (store, delivery engine, targets) → the MQTT broker (when configured)
 * → the HTTP API (ingest, admin, metrics, health) on Fastify → graceful shutdown. `waystation start` runs this.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { type Logger, pino } from 'pino';
import { createMetrics, type Metrics } from './admin/metrics.js';
import { mqttTopicRoutes } from './admin/mqtt-topics.js';
import { adminRoutes } from './admin/routes.js';
import { defaultConfig } from './config/defaults.js';
import { loadConfigFile } from './config/load.js';
import { parseConfig } from './config/resolve.js';
import type { WaystationConfig, WaystationConfigInput } from './config/schema.js';
import { ErrorCodes, WaystationError } from './errors.js';
import { type Principal, type Scope, TokenAuth } from './ingest/http/auth.js';
import { publishRoutes } from './ingest/http/publish.js';
import type { Broker } from './ingest/mqtt/broker.js';
import { MqttServer } from './ingest/mqtt/server.js';
import { Waystation, type WaystationOptions } from './waystation.js';

export interface GatewayOptions {
  /** A YAML or JSON file; without it the embedded default configuration runs. */
  configPath?: string;
  /** Overrides the configuration's dataDir. */
  dataDir?: string;
  /** Overrides the configuration's http.listen (tests use "127.0.0.1:0"). */
  listen?: string;
  /** Overrides mqtt.listen when the configuration has an `mqtt` section. */
  mqttListen?: string;
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
  /** Passed to Waystation.open (tests inject targets). */
  waystation?: Pick<WaystationOptions, 'targets'>;
}

const VERSION = '0.1.0';

interface Readiness {
  ready: boolean;
}

export class Gateway {
  private constructor(
    private readonly readiness: Readiness,
    readonly ws: Waystation,
    readonly app: FastifyInstance,
    readonly logger: Logger,
    /** Base URL the HTTP API listens on. */
    readonly url: string,
    /** The MQTT broker, when the configuration has an `mqtt` section. */
    readonly mqtt: MqttServer | undefined,
  ) {}

  static async start(options: GatewayOptions = {}): Promise<Gateway> {
    const env = options.env ?? process.env;
    // JSON lines for log collectors; readable lines when a person watches a terminal.
    const logger =
      options.logger ??
      pino({
        level: env.WAYSTATION_LOG_LEVEL ?? 'info',
        transport: process.stdout.isTTY
          ? { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } }
          : undefined,
      });
    const input: WaystationConfigInput = options.configPath
      ? ((await loadConfigFile(options.configPath, env)) as WaystationConfigInput)
      : defaultConfig;
    const config = { ...input } as Record<string, unknown>;
    // --data-dir is the user's path, relative to where they typed it.
    if (options.dataDir) config.dataDir = resolve(options.dataDir);
    if (options.listen) config.http = { ...(config.http as object | undefined), listen: options.listen };
    if (options.mqttListen && config.mqtt)
      config.mqtt = { ...(config.mqtt as object), listen: options.mqttListen };
    const { config: parsed } = parseConfig(config);
    const baseDir = options.configPath ? dirname(resolve(options.configPath)) : process.cwd();
    logger.info(
      { config: options.configPath ?? '(embedded default)', dataDir: resolve(baseDir, parsed.dataDir) },
      'starting waystation',
    );

    let ws: Waystation | undefined;
    let mqtt: MqttServer | undefined;
    const metrics = createMetrics(
      () => ws,
      () => mqtt?.broker,
    );
    ws = await Waystation.open(config as WaystationConfigInput, {
      ...options.waystation,
      logger,
      baseDir,
      observe: { delivery: metrics.observeDelivery, logCommit: metrics.observeFsync },
    });
    try {
      if (parsed.mqtt) mqtt = await MqttServer.start(ws, parsed.mqtt, logger);
      const readiness: Readiness = { ready: false };
      const app = await buildHttpApp(ws, parsed, logger, metrics, () => readiness.ready, mqtt?.broker);
      const { host, port } = splitListen(parsed.http.listen);
      await app.listen({ host, port });
      const address = app.server.address();
      const actualPort = typeof address === 'object' && address ? address.port : port;
      const scheme = parsed.http.tls ? 'https' : 'http';
      const url = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
      const gateway = new Gateway(readiness, ws, app, logger, url, mqtt);
      readiness.ready = true;
      if (parsed.auth.tokens.length === 0) {
        logger.warn(
          { listen: parsed.http.listen },
          'no auth.tokens configured: the HTTP API is open to anyone on this host',
        );
      }
      logger.info({ url }, `waystation listening on ${url}`);
      return gateway;
    } catch (err) {
      await mqtt?.close().catch(() => {});
      await ws.close().catch(() => {});
      throw err;
    }
  }

  /**
   * Graceful shutdown: not ready, no new publishes (503), in-flight requests finish, deliveries
   * finish or return to the backlog (within shutdownTimeout), everything saved and fsynced.
   */
  async close(): Promise<void> {
    if (!this.readiness.ready && !this.app.server.listening) return;
    this.readiness.ready = false;
    this.logger.info('shutting down: intake stopped, finishing in-flight work');
    this.ws.stopIntake();
    await this.app.close();
    await this.mqtt?.close();
    await this.ws.close();
    this.logger.info('shutdown complete');
  }
}

function splitListen(listen: string): { host: string; port: number } {
  const at = listen.lastIndexOf(':');
  return { host: listen.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(listen.slice(at + 1)) };
}

export async function buildHttpApp(
  ws: Waystation,
  config: WaystationConfig,
  logger: Logger,
  metrics: Metrics,
  isReady: () => boolean,
  broker?: Broker,
): Promise<FastifyInstance> {
  const tls = config.http.tls;
  const app = Fastify({
    // Per-request lines would drown the state changes that matter; errors are still logged.
    loggerInstance: logger.child({ component: 'http' }, { level: 'warn' }),
    bodyLimit: 1024 * 1024,
    ...(tls
      ? {
          https: {
            cert: readFileSync(tls.cert),
            key: readFileSync(tls.key),
            ca: tls.ca ? readFileSync(tls.ca) : undefined,
            requestCert: tls.requestClientCert,
            rejectUnauthorized: tls.requestClientCert,
          },
        }
      : {}),
  }) as unknown as FastifyInstance;

  await app.register(swagger, {
    openapi: {
      info: { title: 'Waystation HTTP API', version: VERSION },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof WaystationError) {
      if (err.httpStatus >= 500 && err.httpStatus !== 507 && err.httpStatus !== 503)
        req.log.error({ err }, err.message);
      return reply.code(err.httpStatus).send({ error: { code: err.code, message: err.message } });
    }
    const e = err as { statusCode?: number; validation?: unknown; message: string; code?: string };
    if (e.validation)
      return reply.code(400).send({ error: { code: ErrorCodes.HttpBadRequest, message: e.message } });
    if (e.statusCode === 413) {
      return reply.code(413).send({ error: { code: ErrorCodes.HttpPayloadTooLarge, message: e.message } });
    }
    if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
      return reply
        .code(e.statusCode)
        .send({ error: { code: ErrorCodes.HttpBadRequest, message: e.message } });
    }
    req.log.error({ err }, 'unexpected error');
    return reply
      .code(500)
      .send({ error: { code: ErrorCodes.Internal, message: 'Internal error; see the gateway log.' } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({
      error: {
        code: ErrorCodes.HttpNotFound,
        message: `No endpoint ${req.method} ${req.url}; see GET /openapi.json.`,
      },
    }),
  );

  const auth = new TokenAuth(config.auth.tokens);
  const principals = new WeakMap<FastifyRequest, Principal>();
  const authorize = (req: FastifyRequest, scope: Scope, stream?: string): void => {
    if (!auth.enabled) return;
    let principal = principals.get(req);
    if (!principal) {
      principal = auth.authenticate(req.headers.authorization);
      principals.set(req, principal);
    }
    auth.authorize(principal, scope, stream);
  };

  await app.register(publishRoutes, {
    ws,
    maxBodyBytes: config.http.maxBodyBytes,
    maxBatchBytes: config.http.maxBatchBytes,
    inlineBodyBytes: config.storage.blobThreshold,
    authorize,
  });
  await app.register(adminRoutes, { ws, authorize });
  await app.register(mqttTopicRoutes, { broker, authorize });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) =>
    isReady() ? { status: 'ready' } : reply.code(503).send({ status: 'not ready' }),
  );
  app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
    authorize(req, 'read');
    await metrics.refresh();
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}
