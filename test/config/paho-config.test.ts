import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config/load.js';
import { parseConfig } from '../../src/config/resolve.js';

const pahoYaml = fileURLToPath(new URL('../../config/paho.yaml', import.meta.url));

describe('config/paho.yaml (the Paho interoperability suite)', () => {
  it('takes its addresses and data directory from the environment, with defaults', async () => {
    const { config: defaults } = parseConfig(await loadConfigFile(pahoYaml, {}));
    expect(defaults.dataDir).toBe('../data-paho');
    expect(defaults.http.listen).toBe('127.0.0.1:8085');
    expect(defaults.mqtt?.listen).toBe('127.0.0.1:1885');
    const env = { MQTT_LISTEN: '127.0.0.1:1883', HTTP_LISTEN: '127.0.0.1:9000', DATA_DIR: '/tmp/p' };
    const { config: set } = parseConfig(await loadConfigFile(pahoYaml, env));
    expect([set.dataDir, set.http.listen, set.mqtt?.listen]).toEqual([
      '/tmp/p',
      '127.0.0.1:9000',
      '127.0.0.1:1883',
    ]);
  });

  it('caps keep-alive at 60 s, refuses test/nosubscribe and lets anonymous clients in', async () => {
    const { mqtt } = parseConfig(await loadConfigFile(pahoYaml, {})).config;
    expect(mqtt?.maxKeepAlive).toBe(60_000);
    expect(mqtt?.allowAnonymous).toBe(true);
    expect(mqtt?.anonymous?.denySubscribe).toEqual(['test/nosubscribe']);
    expect(mqtt?.anonymous?.subscribe).toEqual(['#']);
  });
});
