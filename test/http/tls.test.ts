import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { Gateway } from '../../src/gateway.js';
import { selfSignedCert } from '../support/tls.js';

describe('HTTPS', () => {
  it('serves the API over TLS with the configured certificate', async () => {
    const { dir, key, cert } = await selfSignedCert();
    const configPath = join(dir, 'waystation.yaml');
    await writeFile(
      configPath,
      stringify({
        dataDir: './data',
        http: { listen: '127.0.0.1:0', tls: { cert, key } },
        streams: { s: {} },
      }),
    );
    const gw = await Gateway.start({ configPath, logger: pino({ level: 'silent' }) });
    try {
      expect(gw.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const dispatcher = new Agent({ connect: { ca: readFileSync(cert) } });
      const res = await request(`${gw.url}/v1/streams/s/messages`, {
        method: 'POST',
        body: 'secure',
        dispatcher,
      });
      expect(res.statusCode).toBe(202);
      expect(((await res.body.json()) as { seq: number }).seq).toBe(1);
      await dispatcher.close();
      // Without trusting the certificate the connection is refused.
      await expect(request(`${gw.url}/healthz`)).rejects.toThrow();
    } finally {
      await gw.close();
    }
  });
});
