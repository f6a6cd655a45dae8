/**
 * The MQTT store-and-forward topics API (SPEC §5): GET/POST /v1/mqtt/topics and
 * DELETE /v1/mqtt/topics/{name}, where name is the topic filter (URL-encoded) or its stream.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { StoreAndForwardTopicInput } from '../config/schema.js';
import { MqttTopicConflictError } from '../errors.js';
import type { Scope } from '../ingest/http/auth.js';
import type { Broker } from '../ingest/mqtt/broker.js';

export interface MqttTopicRoutesOptions {
  /** Undefined when the configuration has no `mqtt` section. */
  broker: Broker | undefined;
  authorize: (req: FastifyRequest, scope: Scope, stream?: string) => void;
}

export async function mqttTopicRoutes(app: FastifyInstance, opts: MqttTopicRoutesOptions): Promise<void> {
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
      opts.authorize(req, 'read');
      return { topics: opts.broker?.listTopics() ?? [] };
    },
  );

  app.post<{ Body: StoreAndForwardTopicInput }>(
    '/v1/mqtt/topics',
    { schema: { summary: 'Create a store-and-forward topic', body: { type: 'object' } } },
    async (req, reply) => {
      opts.authorize(req, 'admin');
      const topic = await broker().createTopic(req.body);
      return reply.code(201).send(topic);
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/v1/mqtt/topics/:name',
    { schema: { summary: 'Remove a store-and-forward topic with its stream, data and subscriber tracking' } },
    async (req, reply) => {
      opts.authorize(req, 'admin');
      await broker().removeTopic(req.params.name);
      return reply.code(204).send();
    },
  );
}
