import { describe, expect, it } from 'vitest';
import { tuneYoungGenerationForStreaming } from '../../src/cli/v8-tuning.js';

describe('V8 settings of the gateway process', () => {
  it('leaves V8 before 13 (Node 20 and 22) alone: their default is the setting', () => {
    expect(tuneYoungGenerationForStreaming('11.3.244.8-node.38', [])).toBe(false);
    expect(tuneYoungGenerationForStreaming('12.4.254.21-node.57', [])).toBe(false);
  });

  it('leaves a young-generation size passed to node by the operator alone', () => {
    expect(
      tuneYoungGenerationForStreaming('13.6.233.17-node.63', ['--scavenger-max-new-space-capacity-mb=16']),
    ).toBe(false);
  });

  it.runIf(Number.parseInt(process.versions.v8, 10) >= 13)('sets V8 12’s default on V8 13 and later', () => {
    expect(tuneYoungGenerationForStreaming(process.versions.v8, [])).toBe(true);
  });
});
