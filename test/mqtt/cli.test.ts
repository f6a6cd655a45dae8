import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/resolve.js';
import type { ConfigError } from '../../src/errors.js';
import { cli, startCli, stopCli, writeConfig } from '../support/cli.js';

describe('waystation topics (CLI) and the mqtt configuration', () => {
  it('creates, lists and removes a store-and-forward topic on a running gateway', async () => {
    const config = await writeConfig({
      mqtt: {
        listen: '127.0.0.1:0',
        allowAnonymous: true,
        storeAndForwardTopics: [{ topic: 'fixed/#', stream: 'fixed' }],
      },
    });
    const gw = await startCli(['--config', config]);
    try {
      const url = ['--url', gw.url];
      const created = await cli([
        'topics',
        'create',
        'plant/+/temp',
        '--stream',
        'temps',
        '--retention',
        '3 month',
        '--rate',
        '50',
        ...url,
      ]);
      expect(created).toMatchObject({ code: 0, stdout: 'created plant/+/temp (stream temps)\n' });
      const bad = await cli(['topics', 'create', 'a/#/b', '--stream', 'ab', ...url]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/"#" must be a whole level and the last one/);
      const listed = await cli(['topics', 'list', '--json', ...url]);
      const rows = JSON.parse(listed.stdout) as {
        topic: string;
        source: string;
        retention: unknown;
        maxDeliveryRatePerSecond: number;
      }[];
      expect(rows.map((r) => [r.topic, r.source])).toEqual([
        ['fixed/#', 'config'],
        ['plant/+/temp', 'runtime'],
      ]);
      expect(rows[1]).toMatchObject({
        retention: { period: 3, unit: 'month' },
        maxDeliveryRatePerSecond: 50,
      });
      const table = await cli(['topics', 'list', ...url]);
      expect(table.stdout).toMatch(/plant\/\+\/temp\s+temps\s+runtime\s+0\s+3 month\s+50/);
      const fixed = await cli(['topics', 'remove', 'fixed/#', ...url]);
      expect(fixed.code).toBe(1);
      expect(fixed.stderr).toMatch(/defined in the configuration.*WS_ERR_MQTT_TOPIC_CONFLICT/);
      expect(await cli(['topics', 'remove', 'temps', ...url])).toMatchObject({ code: 0 });
      const unknown = await cli(['topics', 'remove', 'temps', ...url]);
      expect(unknown.stderr).toMatch(/WS_ERR_MQTT_TOPIC_UNKNOWN/);
    } finally {
      await stopCli(gw.proc);
    }
  }, 90_000);

  it('reports mqtt configuration mistakes with their paths', () => {
    const issues = (input: unknown) => {
      try {
        parseConfig(input);
        return [];
      } catch (err) {
        return (err as ConfigError).issues.map((i) => i.path);
      }
    };
    expect(
      issues({
        mqtt: {
          storeAndForwardTopics: [
            { topic: 'a/#/b', stream: 's1' },
            { topic: 'x', stream: 's1' },
            { topic: 'x', stream: 's2', retention: { period: 2, unit: 'fortnight' } },
          ],
        },
      }),
    ).toEqual(expect.arrayContaining(['mqtt.storeAndForwardTopics.2.retention']));
    expect(
      issues({
        mqtt: {
          storeAndForwardTopics: [
            { topic: 'a/#/b', stream: 's1' },
            { topic: 'x', stream: 's1' },
            { topic: 'x', stream: 's2' },
          ],
        },
      }),
    ).toEqual([
      'mqtt.storeAndForwardTopics[0].topic',
      'mqtt.storeAndForwardTopics[1].stream',
      'mqtt.storeAndForwardTopics[2].topic',
    ]);
    expect(issues({ mqtt: { lisen: '1' } })).toEqual(['mqtt']);
    const { warnings } = parseConfig({ mqtt: { listen: '0.0.0.0:1883', allowAnonymous: true } });
    expect(warnings.map((w) => w.path)).toEqual(['mqtt.allowAnonymous']);
    expect(parseConfig({ mqtt: {} }).warnings.map((w) => w.path)).toEqual(['mqtt.users']);
  });
});
