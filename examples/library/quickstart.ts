/**
 * The library API in one runnable file: `npx tsx examples/library/quickstart.ts`.
 * A route forwards to an HTTP receiver that is down at first: messages are stored, the route
 * probes, and when the receiver starts the backlog drains in order.
 * (In your own project, import from 'waystation' instead of '../../src/index.js'.)
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Waystation } from '../../src/index.js';

const received: string[] = [];
const receiver = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c));
  req.on('end', () => {
    received.push(`${req.headers['waystation-seq']}:${body}`);
    res.writeHead(200).end();
  });
});
// Reserve a port, then close it: the receiver is "down" until we listen again.
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const { port } = receiver.address() as AddressInfo;
await new Promise<void>((resolve) => receiver.close(() => resolve()));

const dataDir = await mkdtemp(join(tmpdir(), 'waystation-quickstart-'));
const ws = await Waystation.open({
  dataDir,
  targets: { crm: { type: 'http', url: `http://127.0.0.1:${port}/orders` } },
  routes: {
    'orders-to-crm': { streams: ['orders'], target: 'crm', probeInterval: '200ms', probeIntervalMax: '1s' },
  },
});

// publish() resolves once the message is durable on disk.
const first = await ws.publish('orders', Buffer.from('{"order":1}'), {
  headers: { 'content-type': 'application/json' },
});
await ws.publishBatch('orders', [
  { payload: Buffer.from('{"order":2}') },
  { payload: Buffer.from('{"order":3}') },
]);
await new Promise((r) => setTimeout(r, 300));
const stored = await ws.route('orders-to-crm').snapshot();
console.log(`receiver down: route is ${stored.state}, ${stored.inQueue} messages stored`);

await new Promise<void>((resolve) => receiver.listen(port, '127.0.0.1', resolve));
const status = await ws.messageStatus(first.id, { waitFor: 'delivered', timeout: '10s' });
console.log(`message ${status.id}:`, status.routes);
while ((await ws.route('orders-to-crm').snapshot()).inQueue > 0) await new Promise((r) => setTimeout(r, 50));
console.log('receiver got, in order:', received);

await ws.close();
receiver.close();
await rm(dataDir, { recursive: true, force: true });
