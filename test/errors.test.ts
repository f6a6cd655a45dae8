import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../src/errors.js';

describe('error codes', () => {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Set([...doc.matchAll(/`(WS_ERR_[A-Z_]+)`/g)].map((m) => m[1]));
  const defined = new Set<string>(Object.values(ErrorCodes));

  it('documents every code in docs/errors.md', () => {
    expect([...defined].filter((c) => !documented.has(c))).toEqual([]);
  });

  it('documents no code that does not exist', () => {
    expect([...documented].filter((c) => c !== undefined && !defined.has(c))).toEqual([]);
  });

  it('never gives two names the same code', () => {
    expect(defined.size).toBe(Object.keys(ErrorCodes).length);
  });
});
