import amqp, { type Channel, type ChannelModel } from 'amqplib';
import { afterAll } from 'vitest';
import { describeTargetContract } from './contract.js';

let conn: ChannelModel | undefined;
let ch: Channel | undefined;
const channel = async () => {
  conn ??= await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
  ch ??= await conn.createChannel();
  return ch;
};
afterAll(async () => conn?.close());

describeTargetContract({
  name: 'amqp',
  server: { name: 'RabbitMQ', host: '127.0.0.1', port: 5672 },
  target: (port, ns) => ({
    type: 'amqp',
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    routingKey: ns,
    timeout: '2s',
  }),
  async setup(ns) {
    await (await channel()).assertQueue(ns, { durable: true });
  },
  async readBack(ns) {
    const c = await channel();
    const out: string[] = [];
    for (;;) {
      const msg = await c.get(ns, { noAck: true });
      if (!msg) return out;
      out.push(msg.content.toString());
    }
  },
  async cleanup(ns) {
    await (await channel()).deleteQueue(ns);
  },
  // A confirm lost with the connection makes the route publish again.
  exactlyOnce: false,
});
