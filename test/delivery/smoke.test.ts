import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Waystation } from '../../src/index.js';
import { FakeClock } from '../support/fake-clock.js';
import { MemFileSystem } from '../support/mem-fs.js';
import { ScriptedTarget } from '../support/scripted-target.js';

describe('smoke', () => {
  it('stores while the target is down and drains when it returns', async () => {
    const clock = new FakeClock();
    const target = new ScriptedTarget();
    const ws = await Waystation.open(
      {
        dataDir: '/data',
        targets: { crm: { type: 'null' } },
        routes: { r: { streams: ['orders'], target: 'crm', probeInterval: '5s' } },
      },
      {
        clock,
        targets: { crm: target },
        fileSystem: new MemFileSystem(),
        logger: pino({ level: 'silent' }),
        random: () => 0.5,
      },
    );
    await ws.publish('orders', Buffer.from('a'));
    await clock.advance(10);
    expect(target.texts()).toEqual(['a']);
    target.behaviour = 'down';
    await ws.publish('orders', Buffer.from('b'));
    await clock.advance(10);
    expect((await ws.route('r').snapshot()).state).toBe('storing');
    await ws.publish('orders', Buffer.from('c'));
    await clock.advance(10);
    expect((await ws.route('r').snapshot()).inQueue).toBe(2);
    target.behaviour = 'up';
    await clock.advance(6000);
    expect(target.texts()).toEqual(['a', 'b', 'c']);
    const snap = await ws.route('r').snapshot();
    expect(snap.state).toBe('forwarding');
    expect(snap.forwarded).toBe(3);
    await ws.close();
  });
});
