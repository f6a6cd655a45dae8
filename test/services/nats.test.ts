import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll } from 'vitest';
import { describeTargetContract } from './contract.js';

let nc: NatsConnection | undefined;
const conn = async () => (nc ??= await connect({ servers: '127.0.0.1:4222' }));
afterAll(async () => nc?.close());

describeTargetContract({
  name: 'nats',
  server: { name: 'NATS JetStream', host: '127.0.0.1', port: 4222 },
  target: (port, ns) => ({
    type: 'nats',
    servers: `127.0.0.1:${port}`,
    subject: `${ns}.{stream}`,
    timeout: '2s',
  }),
  async setup(ns) {
    const jsm = await jetstreamManager(await conn());
    await jsm.streams.add({ name: ns, subjects: [`${ns}.>`] });
  },
  async readBack(ns) {
    const jsm = await jetstreamManager(await conn());
    const info = await jsm.streams.info(ns);
    const out: string[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const msg = await jsm.streams.getMessage(ns, { seq });
      if (msg) out.push(new TextDecoder().decode(msg.data));
    }
    return out;
  },
  async cleanup(ns) {
    await (await jetstreamManager(await conn())).streams.delete(ns);
  },
  // Nats-Msg-Id = message id: JetStream drops a redelivery within its duplicate window.
  exactlyOnce: true,
});
