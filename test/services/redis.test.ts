import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { describeTargetContract } from './contract.js';

const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
redis.on('error', () => {});
afterAll(() => redis.disconnect());

describeTargetContract({
  name: 'redis',
  server: { name: 'Redis', host: '127.0.0.1', port: 6379 },
  target: (port, ns) => ({ type: 'redis', url: `redis://127.0.0.1:${port}`, stream: ns, timeout: '2s' }),
  async readBack(ns) {
    const entries = await redis.xrange(ns, '-', '+');
    return entries.map(([, fields]) => fields[fields.indexOf('payload') + 1]!);
  },
  cleanup: async (ns) => {
    await redis.del(ns);
  },
  // A reply lost with the connection makes the route send that XADD again.
  exactlyOnce: false,
});
