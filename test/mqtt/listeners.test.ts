import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startGateway } from '../support/gateway.js';
import { collect, connectClient, mqttUrl } from '../support/mqtt.js';
import { selfSignedCert } from '../support/tls.js';
import { until } from '../support/wait.js';

describe('mqtt listeners: TLS and WebSocket', () => {
  it('one broker behind TCP, TLS and WebSocket listeners', async () => {
    const { key, cert } = await selfSignedCert();
    const { gw } = await startGateway({
      mqtt: {
        allowAnonymous: true,
        tls: { listen: '127.0.0.1:0', key, cert },
        websocket: { listen: '127.0.0.1:0' },
      },
    });
    try {
      const addresses = gw.mqtt!.addresses;
      expect(addresses.tls).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
      expect(addresses.websocket).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/mqtt$/);
      const viaWs = await connectClient(addresses.websocket!, { protocolVersion: 5 });
      const got = collect(viaWs);
      await viaWs.subscribeAsync('secure/#', { qos: 1 });
      const viaTls = await connectClient(addresses.tls!, { ca: readFileSync(cert), protocolVersion: 4 });
      await viaTls.publishAsync('secure/a', 'over tls', { qos: 1 });
      const viaTcp = await connectClient(mqttUrl(gw));
      await viaTcp.publishAsync('secure/b', 'over tcp', { qos: 2 });
      await until(() => got.length === 2, 5000, 'both messages over WebSocket');
      expect(got.map((m) => m.payload.toString())).toEqual(['over tls', 'over tcp']);
      // A client that does not trust the certificate cannot connect.
      await expect(connectClient(addresses.tls!, { rejectUnauthorized: true })).rejects.toThrow();
      await expect(
        connectClient(mqttUrl(gw), {
          protocolVersion: 5,
          properties: { authenticationMethod: 'SCRAM-SHA-1' },
        }),
      ).rejects.toThrow(/Bad authentication method/i);
    } finally {
      await gw.close();
    }
  });
});
