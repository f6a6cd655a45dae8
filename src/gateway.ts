/**
 * The composition root of the gateway program: configuration file (or the embedded default) →
 * the library's Waystation (store, delivery engine, targets) → the MQTT broker (when configured)
 * → the HTTP API (ingest, admin, metrics, health) on Fastify → graceful shutdown. `waystation start` runs this.
 */
import { readFileSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { type Logger, pino } from 'pino';
import { DOCS_PAGE_CSP, type OpenApiDocument, renderDocsPage } from './admin/docs-page.js';
import { createMetrics, type Metrics } from './admin/metrics.js';
import { filterMetricsText } from './admin/metrics-reach.js';
import { mqttTopicRoutes } from './admin/mqtt-topics.js';
import { auditRouteActions } from './admin/route-audit.js';
import { HistoryRecorder, RouteHistories } from './admin/route-history.js';
import { routeHistoryRoutes, routeReader } from './admin/route-history-routes.js';
import { RouteTimeline, stateSetter } from './admin/route-timeline.js';
import { adminRoutes } from './admin/routes.js';
import { uiRoutes } from './admin/ui-routes.js';
import { UiSessions } from './admin/ui-session.js';
import { defaultConfig } from './config/defaults.js';
import { loadConfigFile } from './config/load.js';
import { parseConfig } from './config/resolve.js';
import type { WaystationConfig, WaystationConfigInput } from './config/schema.js';
import { type ErrorCode, ErrorCodes, WaystationError } from './errors.js';
import { createAccessCheck, TokenAuth } from './ingest/http/auth.js';
import { StagingBudget } from './ingest/http/body-guard.js';
import { publishRoutes } from './ingest/http/publish.js';
import type { Broker } from './ingest/mqtt/broker.js';
import { MqttServer } from './ingest/mqtt/server.js';
import { nodeFileSystem } from './log/index.js';
import { VERSION } from './version.js';
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
  /** pino level (trace, debug, info, warn, error, fatal, silent); default WAYSTATION_LOG_LEVEL, then info. */
  logLevel?: string;
  /** Passed to Waystation.open (tests inject targets). */
  waystation?: Pick<WaystationOptions, 'targets'>;
}

interface Readiness {
  ready: boolean;
}

/** The dashboard's route history and timeline (docs/dashboard.md), kept by the gateway. */
export interface GatewayDashboard {
  histories: RouteHistories;
  recorder: HistoryRecorder;
  timeline: RouteTimeline;
  oldestPendingAt: (route: string) => number | undefined;
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
    private readonly dashboard: GatewayDashboard,
  ) {}

  static async start(options: GatewayOptions = {}): Promise<Gateway> {
    const env = options.env ?? process.env;
    // JSON lines for log collectors; readable lines when a person watches a terminal.
    const logger =
      options.logger ??
      pino({
        level: options.logLevel ?? env.WAYSTATION_LOG_LEVEL ?? 'info',
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
      `starting waystation ${VERSION}`,
    );

    let ws: Waystation | undefined;
    let mqtt: MqttServer | undefined;
    const onDashboardWarning = (message: string, err?: unknown) =>
      logger.warn({ err }, `dashboard: ${message}`);
    // Created before the Waystation opens, so the state changes of its start are in the timeline;
    // its file is read once the Waystation holds the data directory's lock.
    const timeline = new RouteTimeline({ onWarning: onDashboardWarning });
    const metrics = createMetrics(
      () => ws,
      () => mqtt?.broker,
    );
    ws = await Waystation.open(config as WaystationConfigInput, {
      ...options.waystation,
      logger,
      baseDir,
      observe: {
        delivery: metrics.observeDelivery,
        logCommit: metrics.observeFsync,
        leaseRenewal: metrics.observeLeaseRenewal,
        stateChange: (route, c) =>
          timeline.record(route, {
            kind: 'state',
            from: c.from,
            to: c.to,
            by: stateSetter(c.to, c.cause),
            lastError: c.lastError,
          }),
      },
    });
    const histories = new RouteHistories();
    const reader = routeReader(ws);
    const dashboardDir = join(ws.dataDir, 'dashboard');
    const recorder = new HistoryRecorder({
      histories,
      read: reader.read,
      path: join(dashboardDir, 'route-history.state'),
      fs: nodeFileSystem,
      onWarning: onDashboardWarning,
    });
    const dashboard: GatewayDashboard = {
      histories,
      recorder,
      timeline,
      oldestPendingAt: reader.oldestPendingAt,
    };
    try {
      const routeNames = (await ws.routes()).map((r) => r.name);
      await timeline.open(nodeFileSystem, join(dashboardDir, 'route-timeline.state'), routeNames);
      for (const route of routeNames) timeline.record(route, { kind: 'start' });
      await recorder.start(routeNames);
      if (parsed.mqtt) mqtt = await MqttServer.start(ws, parsed.mqtt, logger);
      const readiness: Readiness = { ready: false };
      const app = await buildHttpApp(
        ws,
        parsed,
        logger,
        metrics,
        () => readiness.ready,
        dashboard,
        mqtt?.broker,
      );
      const { host, port } = splitListen(parsed.http.listen);
      await app.listen({ host, port });
      const address = app.server.address();
      const actualPort = typeof address === 'object' && address ? address.port : port;
      const scheme = parsed.http.tls ? 'https' : 'http';
      const url = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
      const gateway = new Gateway(readiness, ws, app, logger, url, mqtt, dashboard);
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
      await recorder.stop();
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
    // The dashboard's files are written while the Waystation still holds the data directory.
    const { recorder, timeline } = this.dashboard;
    for (const r of await this.ws.routes()) timeline.record(r.name, { kind: 'stop' });
    await recorder.stop();
    await timeline.flush();
    await this.ws.close();
    this.logger.info('shutdown complete');
  }
}

/** The documented error shape of every API response (docs/errors.md). */
function errorBody(code: ErrorCode, message: string): { error: { code: ErrorCode; message: string } } {
  return { error: { code, message } };
}

/** Codes for the 4xx statuses the framework raises itself; any other 4xx is a bad request. */
const FRAMEWORK_CODES: Readonly<Record<number, ErrorCode>> = {
  404: ErrorCodes.HttpNotFound,
  405: ErrorCodes.HttpMethodNotAllowed,
  408: ErrorCodes.HttpBodyTimeout,
  413: ErrorCodes.HttpPayloadTooLarge,
  414: ErrorCodes.HttpUriTooLong,
  415: ErrorCodes.HttpUnsupportedMediaType,
  431: ErrorCodes.HttpHeadersTooLarge,
};

function clientErrorCode(status: number): ErrorCode {
  return FRAMEWORK_CODES[status] ?? ErrorCodes.HttpBadRequest;
}

/** Status, code and message for a request Node's HTTP parser refused. */
function parserRefusal(err: NodeJS.ErrnoException): [number, ErrorCode, string] {
  if (err.code === 'HPE_HEADER_OVERFLOW')
    return [
      431,
      ErrorCodes.HttpHeadersTooLarge,
      'The request headers are larger than the server accepts (16 KiB).',
    ];
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return [408, ErrorCodes.HttpBodyTimeout, 'The request did not arrive completely in time.'];
  const reason = (err as { reason?: string }).reason ?? err.message;
  return [
    400,
    ErrorCodes.HttpBadRequest,
    `The request is not valid HTTP/1.1 (${err.code ?? 'parse error'}: ${reason}); check Content-Length, Transfer-Encoding and header bytes.`,
  ];
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
  dashboard: Pick<GatewayDashboard, 'histories' | 'timeline' | 'oldestPendingAt'>,
  broker?: Broker,
): Promise<FastifyInstance> {
  const tls = config.http.tls;
  const httpLogger = logger.child({ component: 'http' }, { level: 'warn' });
  // Refusals that are the client's doing (malformed requests, bodies refused as they arrive) are
  // logged at info, below httpLogger's warn.
  const clientLogger = logger.child({ component: 'http' });
  const app = Fastify({
    // Per-request lines would drown the state changes that matter; errors are still logged.
    loggerInstance: httpLogger,
    bodyLimit: 1024 * 1024,
    // Above every path parameter's own schema bound (names of 128, topic filters of 1024).
    routerOptions: { maxParamLength: 2048 },
    // The router's refusals (bad percent-encoding, an over-long parameter) in the API's shape.
    frameworkErrors: (err, _req, reply) => {
      const status = (err as { statusCode?: number }).statusCode ?? 400;
      void (reply as FastifyReply).code(status).send(errorBody(clientErrorCode(status), err.message));
    },
    // Requests Node's HTTP parser refuses before Fastify sees them, in the API's shape too.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const [status, code, message] = parserRefusal(err);
      clientLogger.info({ code: err.code }, 'refused a malformed request');
      if (socket.writable) {
        const body = JSON.stringify(errorBody(code, message));
        socket.write(
          `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`,
        );
      }
      socket.destroy();
    },
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

  // Node answers an Expect other than 100-continue itself, with an empty body: in the API's shape instead.
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const body = JSON.stringify(
      errorBody(
        ErrorCodes.HttpExpectationFailed,
        `Expect: "${req.headers.expect}" is not supported; send "Expect: 100-continue" or none.`,
      ),
    );
    res.writeHead(417, { 'content-type': 'application/json; charset=utf-8', connection: 'close' }).end(body);
  });

  await app.register(swagger, {
    openapi: {
      info: { title: 'Waystation HTTP API', version: VERSION },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });

  app.setErrorHandler((err, req, reply) => {
    // A refusal before the body was read whole ends the connection with the answer: otherwise
    // Node would wait for the rest of a body nobody reads, as long as the client keeps it open.
    if (!req.raw.complete) reply.header('connection', 'close');
    if (err instanceof WaystationError) {
      if (err.httpStatus >= 500 && err.httpStatus !== 507 && err.httpStatus !== 503)
        req.log.error({ err }, err.message);
      return reply.code(err.httpStatus).send(errorBody(err.code, err.message));
    }
    const e = err as { statusCode?: number; validation?: unknown; message: string; code?: string };
    if (e.validation) return reply.code(400).send(errorBody(ErrorCodes.HttpBadRequest, e.message));
    if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
      return reply.code(e.statusCode).send(errorBody(clientErrorCode(e.statusCode), e.message));
    }
    req.log.error({ err }, 'unexpected error');
    return reply.code(500).send(errorBody(ErrorCodes.Internal, 'Internal error; see the gateway log.'));
  });
  app.setNotFoundHandler((req, reply) => {
    if (!req.raw.complete) reply.header('connection', 'close');
    return reply
      .code(404)
      .send(
        errorBody(ErrorCodes.HttpNotFound, `No endpoint ${req.method} ${req.url}; see GET /openapi.json.`),
      );
  });

  const auth = new TokenAuth(config.auth.tokens);
  // The dashboard's session cookie is the other way in beside the Bearer header (src/admin/ui-session.ts).
  const sessions = new UiSessions();
  const access = createAccessCheck(auth, sessions.authenticate);

  await app.register(publishRoutes, {
    ws,
    maxBodyBytes: config.http.maxBodyBytes,
    maxBatchBytes: config.http.maxBatchBytes,
    inlineBodyBytes: config.storage.blobThreshold,
    body: {
      budget: new StagingBudget(config.http.maxStagingBytes),
      timeoutMs: config.http.bodyTimeout,
      refused: (reason, err) => {
        metrics.observeBodyRefusal(reason);
        clientLogger.info({ reason }, err.message);
      },
    },
    access,
  });
  // Before the API's routes: they inherit the hook that puts route actions into the timeline.
  auditRouteActions(app, dashboard.timeline, access);
  await app.register(adminRoutes, { ws, access });
  await app.register(routeHistoryRoutes, { ws, access, ...dashboard });
  await app.register(uiRoutes, { ws, auth, sessions, access, secure: Boolean(tls) });
  await app.register(mqttTopicRoutes, {
    broker,
    access,
    routeStreams: (r) => ws.routeStreams(r),
    clustered: ws.clusterCounters() !== undefined,
  });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) =>
    isReady()
      ? { status: 'ready' }
      : reply
          .code(503)
          .send(errorBody(ErrorCodes.ShuttingDown, 'Not ready: the gateway is starting or shutting down.')),
  );
  app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
    const principal = access(req, 'read');
    await metrics.refresh();
    reply.header('content-type', metrics.registry.contentType);
    const text = await metrics.registry.metrics();
    if (principal.unlimited) return text;
    const topics = new Map((broker?.listTopics() ?? []).map((t) => [t.topic, t.stream]));
    return filterMetricsText(text, {
      principal,
      routeStreams: (route) => ws.routeStreams(route),
      topicStream: (topic) => topics.get(topic),
    });
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/docs', { schema: { hide: true } }, async (_req, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', DOCS_PAGE_CSP)
      .header('x-content-type-options', 'nosniff')
      .send(renderDocsPage(app.swagger() as OpenApiDocument)),
  );
  return app;
}
