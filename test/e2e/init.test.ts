import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Gateway } from '../../src/gateway.js';
import { cli, writeConfig } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

describe('waystation init and --log-level', () => {
  it('writes commented starter configurations that validate accepts, and never overwrites unasked', async () => {
    const dir = await tempDir('ws-init-');
    const plain = join(dir, 'waystation.yaml');
    const made = await cli(['init', plain]);
    expect(made.code).toBe(0);
    expect(made.stdout).toContain(`next: waystation validate --config ${plain}`);
    expect(await readFile(plain, 'utf8')).toMatch(/^# Waystation configuration/);
    expect(await cli(['validate', '--config', plain])).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/valid/),
    });

    const withMqtt = join(dir, 'mqtt.yaml');
    expect((await cli(['init', '--mqtt', withMqtt])).code).toBe(0);
    expect(await readFile(withMqtt, 'utf8')).toContain('storeAndForwardTopics:');
    expect((await cli(['validate', '--config', withMqtt])).stdout).toMatch(/valid \(2 streams/);

    await writeFile(plain, 'mine: true\n');
    const refused = await cli(['init', plain]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/exists; pass --force/);
    expect(await readFile(plain, 'utf8')).toBe('mine: true\n');
    expect((await cli(['init', '--force', plain])).code).toBe(0);
    expect((await cli(['validate', '--config', plain])).code).toBe(0);

    expect((await cli(['init', '-'])).stdout).toMatch(/^# Waystation configuration/);
  }, 90_000);

  it('takes the log level from --log-level before WAYSTATION_LOG_LEVEL, and refuses an unknown one', async () => {
    const gw = await Gateway.start({
      configPath: await writeConfig({
        targets: { t: { type: 'null' } },
        routes: { r: { streams: ['s'], target: 't' } },
      }),
      logLevel: 'silent',
      env: { WAYSTATION_LOG_LEVEL: 'debug' },
    });
    try {
      expect(gw.logger.level).toBe('silent');
    } finally {
      await gw.close();
    }
    const bad = await cli(['start', '--log-level', 'loud']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/Allowed choices are trace, debug, info, warn, error, fatal, silent/);
  }, 60_000);
});
