import type { IConnackPacket } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { MqttAuth } from '../../src/ingest/mqtt/auth.js';
import { hashSecret } from '../../src/ingest/secret-hash.js';
import { startGateway } from '../support/gateway.js';
import { mqttUrl, rawClient } from '../support/mqtt.js';
import { until } from '../support/wait.js';

const user = { username: 'dev', passwordHash: hashSecret('pw'), publish: ['#'], subscribe: ['#'] };

/** A raw client from a loopback address of its own (failures are counted per address), not yet connected. */
async function loginClient(url: string, v: 4 | 5, password: string, localAddress: string) {
  const c = await rawClient(url, v, { localAddress });
  return {
    /** Sends CONNECT; resolves with the CONNACK (a refusal closes the connection too). */
    login: async (): Promise<IConnackPacket> => {
      c.send({
        cmd: 'connect',
        protocolVersion: v,
        clientId: `c-${Math.random()}`,
        username: 'dev',
        password: Buffer.from(password),
        clean: true,
        keepalive: 0,
      });
      await until(() => c.packets.length > 0 || c.socket.destroyed, 15_000, 'the CONNACK');
      const ack = c.packets.find((p) => p.cmd === 'connack') as IConnackPacket | undefined;
      c.socket.destroy();
      if (!ack) throw new Error('no CONNACK');
      return ack;
    },
  };
}

async function login(url: string, v: 4 | 5, password: string, localAddress: string): Promise<IConnackPacket> {
  return (await loginClient(url, v, password, localAddress)).login();
}

/** `n` CONNECTs with distinct bad passwords, written in one go once all sockets are open. */
async function burst(url: string, v: 4 | 5, n: number, localAddress: string): Promise<IConnackPacket[]> {
  const clients = await Promise.all(
    Array.from({ length: n }, (_, i) => loginClient(url, v, `wrong-${v}-${i}`, localAddress)),
  );
  return Promise.all(clients.map((c) => c.login()));
}

/**
 * How long the event loop was busy (running JavaScript, not waiting for I/O), from
 * performance.eventLoopUtilization: a synchronous scrypt counts in full; waiting for one on the
 * thread pool does not. Unlike timer drift, it is not inflated by other processes on the machine.
 */
function watchLoop(): { stop(): { busyMs: number } } {
  const start = performance.eventLoopUtilization();
  return { stop: () => ({ busyMs: performance.eventLoopUtilization(start).active }) };
}

async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await f();
  return { ms: performance.now() - started, value };
}

describe('mqtt broker: password checks', () => {
  it('checks passwords off the event loop, bounded: a burst of bad logins neither stalls the gateway nor queues without end', async () => {
    const { gw } = await startGateway({ mqtt: { users: [user] } });
    try {
      const url = mqttUrl(gw);
      expect((await login(url, 5, 'warm-up', '127.0.0.9')).reasonCode).toBe(0x86);
      const loop = watchLoop();
      // Distinct bad passwords at once (no cache helps): a synchronous scrypt blocks ~5 s here.
      const a5 = await burst(url, 5, 60, '127.0.0.2');
      const a4 = await burst(url, 4, 60, '127.0.0.3');
      const { busyMs } = loop.stop();
      const codes5 = a5.map((a) => a.reasonCode);
      const codes4 = a4.map((a) => a.returnCode);
      // At most 2 run and 32 wait at a time: the rest are told the server is busy (exact bounds: below).
      expect(codes5.filter((c) => c === 0x86).length).toBeGreaterThanOrEqual(2);
      expect(codes5.filter((c) => c === 0x89).length).toBeGreaterThanOrEqual(1);
      expect(codes5.every((c) => c === 0x86 || c === 0x89)).toBe(true);
      expect(codes4.filter((c) => c === 4).length).toBeGreaterThanOrEqual(2);
      expect(codes4.filter((c) => c === 3).length).toBeGreaterThanOrEqual(1);
      expect(codes4.every((c) => c === 3 || c === 4)).toBe(true);
      // 120 synchronous checks keep the loop busy for about 5 s (120 × ~42 ms); off the loop, the
      // burst's sockets and packets cost it well under 1.5 s even on a loaded machine.
      expect(busyMs).toBeLessThan(2500);
      // The right password still works, from another address.
      expect((await login(url, 5, 'pw', '127.0.0.4')).reasonCode).toBe(0);
      expect((await login(url, 4, 'pw', '127.0.0.4')).returnCode).toBe(0);
    } finally {
      await gw.close();
    }
  }, 30_000);

  it('slows down consecutive failures from one address, and a success resets it', async () => {
    const { gw } = await startGateway({ mqtt: { users: [user] } });
    try {
      const url = mqttUrl(gw);
      const from = '127.0.0.5';
      const tries: number[] = [];
      for (let i = 0; i < 4; i++) {
        const { ms, value } = await timed(() => login(url, 5, `guess-${i}`, from));
        expect(value.reasonCode).toBe(0x86);
        tries.push(ms);
      }
      // 0, 100, 200, 400 ms of delay before each check.
      expect(tries[3]!).toBeGreaterThanOrEqual(390);
      expect(tries[3]! - tries[0]!).toBeGreaterThanOrEqual(300);
      // Another address is not slowed down.
      const other = await timed(() => login(url, 5, 'guess-x', '127.0.0.6'));
      expect(other.ms).toBeLessThan(tries[3]!);
      const good = await timed(() => login(url, 5, 'pw', from));
      expect(good.value.reasonCode).toBe(0);
      expect(good.ms).toBeGreaterThanOrEqual(790);
      const after = await timed(() => login(url, 5, 'guess-after', from));
      expect(after.value.reasonCode).toBe(0x86);
      expect(after.ms).toBeLessThan(good.ms);
    } finally {
      await gw.close();
    }
  }, 30_000);

  it('remembers verified pairs, shares a check in progress, and bounds the addresses it tracks', async () => {
    let runs = 0;
    const auth = new MqttAuth([user], false, {
      trackedAddresses: 2,
      verify: async (secret) => {
        runs++;
        await new Promise((r) => setTimeout(r, 5));
        return Buffer.from(secret).toString() === 'pw';
      },
      sleep: async () => {},
    });
    const same = await Promise.all([1, 2, 3].map(() => auth.authenticate('dev', Buffer.from('pw'), 'a')));
    expect(same.every((r) => typeof r === 'object' && r.kind === 'user')).toBe(true);
    expect(runs).toBe(1);
    await auth.authenticate('dev', Buffer.from('pw'), 'a');
    expect(runs).toBe(1);
    expect(await auth.authenticate('dev', Buffer.from('no'), 'a')).toBe('bad-credentials');
    expect(await auth.authenticate('dev', Buffer.from('no'), 'a')).toBe('bad-credentials');
    expect(runs).toBe(2);
    expect(auth.delayFor('a')).toBe(200);
    await auth.authenticate('nobody', Buffer.from('x'), 'b');
    await auth.authenticate('nobody', Buffer.from('x'), 'c');
    expect(auth.delayFor('a')).toBe(0); // the oldest address was forgotten
    expect(auth.delayFor('c')).toBe(100);
    expect(await auth.authenticate(undefined, undefined, 'd')).toBe('not-authorized');
  });

  it('runs at most maxConcurrentVerifications checks, queues maxQueuedVerifications, and refuses the rest as busy', async () => {
    let running = 0;
    let most = 0;
    const auth = new MqttAuth([user], false, {
      maxConcurrentVerifications: 2,
      maxQueuedVerifications: 3,
      verify: async () => {
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 10));
        running--;
        return false;
      },
    });
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => auth.authenticate('dev', Buffer.from(`p${i}`), `addr-${i}`)),
    );
    expect(results).toEqual([...Array(5).fill('bad-credentials'), ...Array(3).fill('busy')]);
    expect(most).toBe(2);
    // The slots are free again afterwards.
    expect(await auth.authenticate('dev', Buffer.from('later'), 'addr-9')).toBe('bad-credentials');
  });
});
