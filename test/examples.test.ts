import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('..', import.meta.url));

describe('documented examples', () => {
  it('examples/library/quickstart.ts runs and drains in order', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'examples/library/quickstart.ts'],
      {
        cwd: repo,
        env: { ...process.env, WAYSTATION_LOG_LEVEL: 'warn' },
        timeout: 30_000,
      },
    );
    expect(stdout).toMatch(/receiver down: route is storing, 3 messages stored/);
    expect(stdout).toMatch(/'orders-to-crm': 'delivered'/);
    expect(stdout).toContain(`receiver got, in order: [ '1:{"order":1}', '2:{"order":2}', '3:{"order":3}' ]`);
  });
});
