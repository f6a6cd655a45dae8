import type { IPublishPacket } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { InvalidHeaderError } from '../../src/errors.js';
import type { Gateway } from '../../src/gateway.js';
import type { WaystationConfigInput } from '../../src/index.js';
import type { BrokerMessage } from '../../src/ingest/mqtt/message.js';
import { Session } from '../../src/ingest/mqtt/session.js';
import { assertMqttHeaders, mqttHeaderProblem } from '../../src/store/mqtt-headers.js';
import type { Store } from '../../src/store/store.js';
import { restartGateway, startGateway } from '../support/gateway.js';
import { collect, connectClient, mqttUrl } from '../support/mqtt.js';
import { until } from '../support/wait.js';

const sfConfig: WaystationConfigInput = {
  mqtt: {
    allowAnonymous: true,
    storeAndForwardTopics: [
      { topic: 'plant/+/temp', stream: 'temps', newSubscriberDeliveryMode: 'StoredMessages' },
    ],
  },
};

/** The store under the library, to write what intake would refuse (data of an older version). */
function storeOf(gw: Gateway): Store {
  return (gw.ws as unknown as { store: Store }).store;
}

async function metric(gw: Gateway, reason: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const m = new RegExp(`^waystation_mqtt_messages_dropped_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(
    text,
  );
  return m ? Number(m[1]) : 0;
}

describe('headers the MQTT broker interprets', () => {
  it('are checked by a pure function that names the header and the allowed values', () => {
    for (const qos of ['-1', '0.5', 'abc', '', '3', ' 1'])
      expect(mqttHeaderProblem({ 'mqtt-qos': qos })).toMatchObject({
        header: 'mqtt-qos',
        problem: /0, 1 or 2/,
      });
    for (const qos of ['0', '1', '2']) expect(mqttHeaderProblem({ 'mqtt-qos': qos })).toBeUndefined();
    expect(mqttHeaderProblem({ 'mqtt-topic': 'a/+/b' })?.problem).toMatch(/wildcards/);
    expect(mqttHeaderProblem({ 'mqtt-topic': '' })?.problem).toMatch(/empty/);
    expect(mqttHeaderProblem({ 'mqtt-topic': 'a\u0000b' })?.problem).toMatch(/U\+0000/);
    expect(mqttHeaderProblem({ 'mqtt-topic': 'a/\ud800' })?.problem).toMatch(/surrogate/);
    expect(mqttHeaderProblem({ 'mqtt-topic': 'plant/line1/\u{1F600}' })).toBeUndefined();
    expect(mqttHeaderProblem({ 'mqtt-response-topic': 'reply/#' })?.header).toBe('mqtt-response-topic');
    expect(mqttHeaderProblem({ 'mqtt-payload-format': 'yes' })?.problem).toMatch(/0 \(bytes\) or 1/);
    expect(mqttHeaderProblem({ 'mqtt-payload-format': '1' }, Buffer.from([0xc3, 0x28]))?.problem).toMatch(
      /UTF-8/,
    );
    expect(mqttHeaderProblem({ 'mqtt-payload-format': '1' }, Buffer.from('fine'))).toBeUndefined();
    expect(mqttHeaderProblem({ 'mqtt-correlation-data': 'not base64!' })?.problem).toMatch(/base64/);
    expect(mqttHeaderProblem({ 'mqtt-correlation-data': 'AAE=' })).toBeUndefined();
    expect(mqttHeaderProblem({ 'mqtt-correlation-data': 'A'.repeat(87384) })?.problem).toMatch(/65535/);
    expect(mqttHeaderProblem({ 'content-type': 'text/plain\u0000' })?.header).toBe('content-type');
    expect(mqttHeaderProblem({ unit: 'x'.repeat(65536) })?.problem).toMatch(/65535 bytes/);
    expect(mqttHeaderProblem({ 'bad\u0000name': 'v' })?.problem).toMatch(/header name/);
    expect(mqttHeaderProblem({ unit: 'C', 'x-origin': 'erp' })).toBeUndefined();
    expect(() => assertMqttHeaders({ 'mqtt-qos': 'abc' })).toThrow(InvalidHeaderError);
    expect(() => assertMqttHeaders({ 'mqtt-qos': 'abc' })).toThrow(/Header "mqtt-qos" is "abc": .*0, 1 or 2/);
  });

  it('are refused at intake: HTTP single (400 with the code), HTTP batch (nothing stored) and the library', async () => {
    const { gw } = await startGateway(sfConfig);
    try {
      for (const qos of ['-1', '0.5', 'abc']) {
        const res = await fetch(`${gw.url}/v1/streams/temps/messages`, {
          method: 'POST',
          headers: { 'content-type': 'text/plain', 'waystation-header-mqtt-qos': qos },
          body: '21.5',
        });
        expect(res.status).toBe(400);
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe('WS_ERR_MESSAGE_HEADER_INVALID');
        expect(body.error.message).toMatch(/mqtt-qos.*0, 1 or 2/);
      }
      const lines = [
        JSON.stringify({ payload: 'ok', headers: { 'mqtt-qos': '1' } }),
        JSON.stringify({ payload: 'bad', headers: { 'mqtt-topic': 'plant/#' } }),
      ].join('\n');
      const batch = await fetch(`${gw.url}/v1/streams/temps/messages:batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body: lines,
      });
      expect(batch.status).toBe(400);
      expect(((await batch.json()) as { error: { code: string } }).error.code).toBe(
        'WS_ERR_MESSAGE_HEADER_INVALID',
      );
      await expect(
        gw.ws.publish('temps', Buffer.from('x'), { headers: { 'MQTT-QoS': '0.5' } }),
      ).rejects.toThrow(InvalidHeaderError);
      await expect(
        gw.ws.publishBatch('temps', [
          { payload: Buffer.from('a') },
          { payload: Buffer.from('b'), headers: { 'mqtt-payload-format': '1' } },
          { payload: Buffer.from([0xff]), headers: { 'mqtt-payload-format': '1' } },
        ]),
      ).rejects.toThrow(/mqtt-payload-format/);
      const { firstSeq, lastSeq } = gw.ws.streamBounds('temps');
      expect(lastSeq - firstSeq + 1).toBe(0);
      // Valid headers still pass.
      const ok = await fetch(`${gw.url}/v1/streams/temps/messages`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain', 'waystation-header-mqtt-qos': '0' },
        body: '21.5',
      });
      expect(ok.status).toBe(202);
    } finally {
      await gw.close();
    }
  });

  it('a stored message the broker cannot send is skipped and counted; the subscriber gets the next ones and never it again', async () => {
    const { gw, dir } = await startGateway(sfConfig);
    let gw2: Gateway | undefined;
    try {
      const url = mqttUrl(gw);
      const sub = await connectClient(url, { clientId: 'dash', clean: false, protocolVersion: 5 });
      const got = collect(sub);
      await sub.subscribeAsync('plant/+/temp', { qos: 1 });
      const store = storeOf(gw);
      const bad = ['-1', '0.5', 'abc'].map((qos) => ({
        payload: Buffer.from(`bad ${qos}`),
        headers: { 'mqtt-qos': qos },
      }));
      // Written past intake's validation, as an older version could have.
      await store.publish('temps', [
        { payload: Buffer.from('first'), headers: { 'mqtt-topic': 'plant/1/temp', 'mqtt-qos': '1' } },
        ...bad,
        {
          payload: Buffer.from('nul'),
          headers: { 'mqtt-topic': 'plant/1/temp', 'content-type': 'a\u0000b' },
        },
      ]);
      await gw.ws.publish('temps', Buffer.from('next'), { headers: { 'mqtt-topic': 'plant/2/temp' } });
      await until(() => got.length === 2, 5000, 'the messages around the unsendable ones');
      expect(got.map((m) => m.payload.toString())).toEqual(['first', 'next']);
      expect(await metric(gw, 'unsendable')).toBe(4);
      const pub = await connectClient(url);
      await pub.publishAsync('plant/3/temp', 'live', { qos: 1 });
      await until(() => got.length === 3, 5000, 'a live message after them');
      await sub.endAsync();
      // The position passed them: a reconnect resends none of them.
      const again = await connectClient(url, { clientId: 'dash', clean: false, protocolVersion: 5 });
      const more = collect(again);
      await pub.publishAsync('plant/4/temp', 'after reconnect', { qos: 1 });
      await until(() => more.length === 1, 5000, 'the message after the reconnect');
      await new Promise((r) => setTimeout(r, 200));
      expect(more.map((m) => m.payload.toString())).toEqual(['after reconnect']);
      await again.endAsync();
      await gw.close();
      // Nor a restart.
      gw2 = await restartGateway(dir);
      const third = await connectClient(mqttUrl(gw2), { clientId: 'dash', clean: false, protocolVersion: 5 });
      const last = collect(third);
      await gw2.ws.publish('temps', Buffer.from('after restart'), {
        headers: { 'mqtt-topic': 'plant/5/temp' },
      });
      await until(() => last.length === 1, 5000, 'the message after the restart');
      expect(last.map((m) => m.payload.toString())).toEqual(['after restart']);
    } finally {
      await gw.close();
      await gw2?.close();
    }
  });
});

describe('a message mqtt-packet cannot encode', () => {
  it('is not sent, frees its packet id and window slot, is counted unsendable and lets the cursor pass it', () => {
    const dropped: string[] = [];
    const session = new Session('c', 10, { dropped: (reason) => dropped.push(reason), sent: () => {} });
    const written: IPublishPacket[] = [];
    session.attach(
      {
        protocolVersion: 5,
        receiveMaximum: 1,
        maxPacketSize: 1 << 20,
        congested: false,
        sendPublish(packet) {
          if (packet.topic === 'boom') throw new Error('Invalid messageId');
          written.push(packet);
          return true;
        },
      },
      () => {},
    );
    const message = (topic: string): BrokerMessage => ({
      topic,
      payload: Buffer.from('x'),
      qos: 1,
      retain: false,
      properties: {},
      expiresAt: undefined,
    });
    let acked = 0;
    session.send(message('boom'), 1, [], false, () => acked++, false);
    expect(dropped).toEqual(['unsendable']);
    expect(acked).toBe(1);
    expect(session.inflightCount).toBe(0);
    expect(session.canSend()).toBe(true);
    session.send(message('fine'), 1, [], false, undefined, false);
    expect(written.map((p) => p.topic)).toEqual(['fine']);
  });
});
