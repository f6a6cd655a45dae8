import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { Gateway } from '../../src/gateway.js';
import type { Target, WaystationConfigInput } from '../../src/index.js';
import { tempDir } from './tmp.js';

/** A gateway on an ephemeral port with its config written to a temp dir. */
export async function startGateway(
  config: WaystationConfigInput,
  targets?: Record<string, Target>,
): Promise<{ gw: Gateway; dir: string }> {
  const dir = await tempDir('ws-gw-');
  const configPath = join(dir, 'waystation.yaml');
  await writeFile(configPath, stringify({ dataDir: './data', ...config }));
  const gw = await restartGateway(dir, targets);
  return { gw, dir };
}

/** A gateway on the config and data directory `startGateway` made in `dir` (a restart). */
export function restartGateway(dir: string, targets?: Record<string, Target>): Promise<Gateway> {
  return Gateway.start({
    configPath: join(dir, 'waystation.yaml'),
    listen: '127.0.0.1:0',
    mqttListen: '127.0.0.1:0',
    logger: pino({ level: 'silent' }),
    waystation: { targets },
  });
}
