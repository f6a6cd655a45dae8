import { describe, expect, it } from 'vitest';
import {
  assertServerVersion,
  parseServerVersion,
  serverVersionAtLeast,
} from '../../src/cluster/server-version.js';
import { ClusterServerTooOldError } from '../../src/errors.js';

describe('nats-server versions', () => {
  it('parses release and pre-release versions', () => {
    expect(parseServerVersion('2.9.10')).toEqual([2, 9, 10]);
    expect(parseServerVersion('v2.12.0-RC.1')).toEqual([2, 12, 0]);
    expect(parseServerVersion('')).toBeUndefined();
    expect(parseServerVersion('banana')).toBeUndefined();
  });

  it('compares numerically, not as strings', () => {
    expect(serverVersionAtLeast('2.9.10')).toBe(false);
    expect(serverVersionAtLeast('2.10.27')).toBe(false);
    expect(serverVersionAtLeast('2.11.0')).toBe(true);
    expect(serverVersionAtLeast('2.15.1')).toBe(true);
    expect(serverVersionAtLeast('3.0.0')).toBe(true);
    expect(serverVersionAtLeast('unknown')).toBe(false);
  });

  it('refuses a server that does not report its version', () => {
    expect(() => assertServerVersion({ info: undefined, getServer: () => 'nats://x:4222' })).toThrow(
      ClusterServerTooOldError,
    );
  });
});
