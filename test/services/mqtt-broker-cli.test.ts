import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { startGateway } from '../support/gateway.js';
import { mqttUrl } from '../support/mqtt.js';

const run = promisify(execFile);

/**
 * The embedded MQTT broker with Mosquitto's command-line clients as real, independent peers
 * (Debian package mosquitto-clients). Fails, naming the package, when they are missing.
 */
describe('mqtt broker with mosquitto_pub / mosquitto_sub', () => {
  it('works with the Mosquitto command-line clients (mosquitto_pub, mosquitto_sub)', async () => {
    const { gw } = await startGateway({
      mqtt: { allowAnonymous: true, storeAndForwardTopics: [{ topic: 'cli/#', stream: 'cli' }] },
    });
    await run('mosquitto_pub', ['--help']).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT')
        throw new Error('mosquitto_pub is not installed: apt-get install mosquitto-clients (see README)');
    });
    try {
      const { hostname, port } = new URL(mqttUrl(gw));
      const base = ['-h', hostname, '-p', port];
      // Register the subscriber (tracked from now on), then let it go offline.
      await run(
        'mosquitto_sub',
        [...base, '-V', 'mqttv5', '-i', 'cli-sub', '-c', '-q', '1', '-t', 'cli/#', '-E'],
        { timeout: 10_000 },
      );
      for (let i = 0; i < 5; i++)
        await run('mosquitto_pub', [...base, '-V', 'mqttv311', '-q', '1', '-t', `cli/${i}`, '-m', `m${i}`], {
          timeout: 5000,
        });
      const { stdout } = await run(
        'mosquitto_sub',
        [
          ...base,
          '-V',
          'mqttv5',
          '-i',
          'cli-sub',
          '-c',
          '-x',
          '60',
          '-q',
          '1',
          '-t',
          'cli/#',
          '-C',
          '5',
          '-v',
          '-W',
          '5',
        ],
        { timeout: 10_000 },
      );
      expect(stdout.trim().split('\n')).toEqual(['cli/0 m0', 'cli/1 m1', 'cli/2 m2', 'cli/3 m3', 'cli/4 m4']);
    } finally {
      await gw.close();
    }
  });
});
