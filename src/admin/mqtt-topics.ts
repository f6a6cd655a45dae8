/**
 * The MQTT store-and-forward topics API (SPEC §5): GET/POST /v1/mqtt/topics and
 * DELETE /v1/mqtt/topics/{name}, where name is the topic filter (URL-encoded) or its stream;
 * GET /v1/mqtt/clients, the connected clients (read-only).
 * A topic is within a token's reach when its stream is (SPEC §8): the listing shows only those,
 * one out of reach is removed as one that does not exist, and a token creates topics only on
 * streams its globs cover. The broker cannot tell which streams an ordinary client touches, so a
 * token with stream globs sees only the clients tracked as subscribers of topics within its
 * reach; a token without globs sees every client.
 */
import type { FastifyInstance } from 'fastify';
import type { StoreAndForwardTopicInput } from '../config/schema.js';
import { MqttTopicConflictError, StreamInUseError, UnknownMqttTopicError } from '../errors.js';
import { type AccessCheck, AuthError, reachesAll } from '../ingest/http/auth.js';
import type { Broker } from '../ingest/mqtt/broker.js';
import { type ConnectedClientInfo, Connection } from '../ingest/mqtt/connection.js';

export interface MqttTopicRoutesOptions {
  /** Undefined when the configuration has no `mqtt` section. */
  broker: Broker | undefined;
  access: AccessCheck;
  /** The streams a route reads (undefined: no such route). */
  routeStreams: (route: string) => readonly string[] | undefined;
  /** Cluster mode: store-and-forward topics are refused (their subscriber positions are node-local). */
  clustered?: boolean;
}

export interface MqttClientInfo extends ConnectedClientInfo {
  /** The session's subscriptions, shared ones included. */
  subscriptions: number;
}

/** A topic filter is at most 65,535 bytes in MQTT; the API takes names up to this many characters. */
export const TOPIC_NAME_MAX_LENGTH = 1024;

export async function mqttTopicRoutes(app: FastifyInstance, opts: MqttTopicRoutesOptions): Promise<void> {
  const { access } = opts;
  const broker = (): Broker => {
    if (!opts.broker)
      throw new MqttTopicConflictError(
        'The MQTT broker is not enabled: add an "mqtt" section to the configuration (docs/mqtt.md).',
      );
    return opts.broker;
  };

  app.get(
    '/v1/mqtt/topics',
    { schema: { summary: 'Store-and-forward topics with their subscribers' } },
    async (req) => {
      const principal = access(req, 'read');
      return { topics: (opts.broker?.listTopics() ?? []).filter((t) => principal.reaches(t.stream)) };
    },
  );

  app.get('/v1/mqtt/clients', { schema: { summary: 'Connected MQTT clients' } }, async (req) => {
    const principal = access(req, 'read');
    const broker = opts.broker;
    if (!broker) return { clients: [] };
    let visible: ((clientId: string) => boolean) | undefined;
    if (!principal.unlimited) {
      const tracked = new Set<string>();
      for (const t of broker.listTopics())
        if (principal.reaches(t.stream)) for (const s of t.subscribers) tracked.add(s.clientId);
      visible = (clientId) => tracked.has(clientId);
    }
    const clients: MqttClientInfo[] = [];
    for (const { session, connection } of broker.connectedClients()) {
      const info = connection instanceof Connection ? connection.describe() : undefined;
      if (!info || (visible && !visible(info.clientId))) continue;
      clients.push({ ...info, subscriptions: session.subscriptions.size });
    }
    clients.sort((a, b) => a.connectedAt - b.connectedAt || (a.clientId < b.clientId ? -1 : 1));
    return { clients };
  });

  app.post<{ Body: StoreAndForwardTopicInput }>(
    '/v1/mqtt/topics',
    { schema: { summary: 'Create a store-and-forward topic', body: { type: 'object' } } },
    async (req, reply) => {
      const principal = access(req, 'admin');
      if (opts.clustered)
        throw new MqttTopicConflictError(
          "Store-and-forward topics are not supported in cluster mode yet: their subscribers' positions are node-local (docs/cluster.md). Publish durably over HTTP or the library instead.",
        );
      const stream: unknown = req.body.stream;
      if (typeof stream === 'string' && !principal.reaches(stream))
        throw new AuthError(403, `Token "${principal.name}" may not create topics on stream "${stream}".`);
      const topic = await broker().createTopic(req.body);
      return reply.code(201).send(topic);
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/v1/mqtt/topics/:name',
    {
      schema: {
        summary: 'Remove a store-and-forward topic with its stream, data and subscriber tracking',
        params: {
          type: 'object',
          properties: { name: { type: 'string', minLength: 1, maxLength: TOPIC_NAME_MAX_LENGTH } },
          required: ['name'],
        },
      },
    },
    async (req, reply) => {
      const principal = access(req, 'admin');
      const { name } = req.params;
      const topic = broker()
        .listTopics()
        .find((t) => t.topic === name || t.stream === name);
      if (!topic || !principal.reaches(topic.stream)) throw new UnknownMqttTopicError(name);
      try {
        await broker().removeTopic(name);
      } catch (err) {
        // Name only the routes the token may see among those that keep the stream in use.
        if (err instanceof StreamInUseError && !principal.unlimited) {
          const seen = err.routes.filter((r) => reachesAll(principal, opts.routeStreams(r) ?? []));
          throw new StreamInUseError(topic.stream, seen.length > 0 ? seen : ["(outside your token's reach)"]);
        }
        throw err;
      }
      return reply.code(204).send();
    },
  );
}
