/**
 * GET /v1/mqtt/clients and the topics' subscriber positions as the dashboard reads them
 * (issue 11), and the hostile side: a token with stream globs sees neither the topics whose
 * stream is outside them nor the clients tracked only there.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { hashToken } from '../../src/ingest/http/auth.js';
import { hashSecret } from '../../src/ingest/secret-hash.js';
import { startGateway } from '../support/gateway.js';
import { connectClient, mqttUrl } from '../support/mqtt.js';

let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const ADMIN = 'mq-admin-token-0123456789';
const TEMPS = 'mq-temps-token-0123456789';
const NOTHING = 'mq-nothing-token-0123456789';

const config = {
  auth: {
    tokens: [
      { name: 'ops', tokenHash: hashToken(ADMIN), scopes: ['admin' as const] },
      { name: 'temps', tokenHash: hashToken(TEMPS), scopes: ['read' as const], streams: ['temps'] },
      { name: 'nothing', tokenHash: hashToken(NOTHING), scopes: ['read' as const], streams: ['none-*'] },
    ],
  },
  mqtt: {
    allowAnonymous: true,
    users: [{ username: 'line1', passwordHash: hashSecret('pw') }],
    storeAndForwardTopics: [
      { topic: 'plant/+/temp', stream: 'temps' },
      { topic: 'secret/#', stream: 'secrets' },
    ],
  },
};

interface ClientInfo {
  clientId: string;
  username: string | null;
  protocolVersion: number;
  connectedAt: number;
  subscriptions: number;
}

const get = (url: string, token: string) =>
  gw!.app.inject({ url, headers: { authorization: `Bearer ${token}` } });

async function clientsOf(token: string): Promise<ClientInfo[]> {
  const res = await get('/v1/mqtt/clients', token);
  expect(res.statusCode).toBe(200);
  return res.json().clients;
}

describe('MQTT clients and subscriber positions in the admin API', () => {
  it('lists connected clients with user, protocol, subscriptions and since when; positions and lag per topic', async () => {
    ({ gw } = await startGateway(config));
    const before = Date.now();
    const plant = await connectClient(mqttUrl(gw), {
      clientId: 'plant-reader',
      username: 'line1',
      password: 'pw',
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
    await plant.subscribeAsync(['plant/#', 'alarms/#'], { qos: 1 });
    const spy = await connectClient(mqttUrl(gw), { clientId: 'secret-reader', protocolVersion: 4 });
    await spy.subscribeAsync('secret/#', { qos: 1 });
    await connectClient(mqttUrl(gw), { clientId: 'idle' });

    const all = await clientsOf(ADMIN);
    expect(all.map((c) => c.clientId).sort()).toEqual(['idle', 'plant-reader', 'secret-reader']);
    const p = all.find((c) => c.clientId === 'plant-reader')!;
    expect(p).toMatchObject({ username: 'line1', protocolVersion: 5, subscriptions: 2 });
    expect(p.connectedAt).toBeGreaterThanOrEqual(before - 1);
    expect(all.find((c) => c.clientId === 'secret-reader')).toMatchObject({
      username: null,
      protocolVersion: 4,
      subscriptions: 1,
    });

    // Three stored while the plant reader is away: it is 3 behind, at its last acknowledged seq.
    await plant.endAsync();
    for (let i = 0; i < 3; i++)
      await gw.ws.publish('temps', `t${i}`, { headers: { 'mqtt-topic': 'plant/1/temp' } });
    const topics = (await get('/v1/mqtt/topics', ADMIN)).json().topics;
    const temps = topics.find((t: { stream: string }) => t.stream === 'temps');
    expect(temps.subscribers).toEqual([
      { clientId: 'plant-reader', lastAcknowledgedSeq: 0, behind: 3, missedByRetention: 0, connected: false },
    ]);
    expect((await clientsOf(ADMIN)).map((c) => c.clientId).sort()).toEqual(['idle', 'secret-reader']);
  });

  it('shows a token with stream globs only the topics and the tracked clients within them', async () => {
    ({ gw } = await startGateway(config));
    const plant = await connectClient(mqttUrl(gw), { clientId: 'plant-reader' });
    await plant.subscribeAsync('plant/+/temp', { qos: 1 });
    const spy = await connectClient(mqttUrl(gw), { clientId: 'secret-reader' });
    await spy.subscribeAsync('secret/#', { qos: 1 });
    await connectClient(mqttUrl(gw), { clientId: 'idle' });

    const topics = (await get('/v1/mqtt/topics', TEMPS)).json().topics;
    expect(topics.map((t: { stream: string }) => t.stream)).toEqual(['temps']);
    expect((await clientsOf(TEMPS)).map((c) => c.clientId)).toEqual(['plant-reader']);
    expect((await get('/v1/mqtt/topics', NOTHING)).json().topics).toEqual([]);
    expect(await clientsOf(NOTHING)).toEqual([]);
    expect((await get('/v1/mqtt/clients', 'no-such-token-0123456789')).statusCode).toBe(401);
  });

  it('answers an empty list without an mqtt section', async () => {
    ({ gw } = await startGateway({ auth: config.auth }));
    expect(await clientsOf(ADMIN)).toEqual([]);
  });
});
