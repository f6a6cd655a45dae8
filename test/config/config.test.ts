import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../../src/config/json-schema.js';
import { parseConfigText } from '../../src/config/load.js';
import { parseConfig } from '../../src/config/resolve.js';
import { parseDuration, parseSize } from '../../src/config/units.js';
import { ConfigError } from '../../src/errors.js';

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
  return [];
}

describe('configuration', () => {
  it('parses durations and sizes as users write them', () => {
    expect(parseDuration('200ms')).toBe(200);
    expect(parseDuration('5s')).toBe(5000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration(1500)).toBe(1500);
    expect(parseDuration('5 parsecs')).toBeUndefined();
    expect(parseSize('64MiB')).toBe(64 * 1024 * 1024);
    expect(parseSize('10MB')).toBe(10_000_000);
    expect(parseSize('512')).toBe(512);
    expect(parseSize('lots')).toBeUndefined();
  });

  it('substitutes ${ENV} and ${ENV:-default}, and names a missing variable by path', () => {
    const text = 'targets:\n  t: { type: http, url: "http://${HOST}:${PORT:-9000}/in" }\n';
    expect(parseConfigText(text, 'c.yaml', { HOST: 'crm' })).toEqual({
      targets: { t: { type: 'http', url: 'http://crm:9000/in' } },
    });
    expect(issuesOf(() => parseConfigText(text, 'c.yaml', {}))).toEqual([
      'targets.t.url: environment variable HOST is not set (write ${HOST:-default} for a default)',
    ]);
  });

  it('rejects duplicate keys in YAML', () => {
    expect(issuesOf(() => parseConfigText('dataDir: a\ndataDir: b\n', 'c.yaml'))[0]).toMatch(
      /unique|duplicate/i,
    );
  });

  it("checks every MQTT ACL filter, the anonymous clients' and denySubscribe included", () => {
    const issues = issuesOf(() =>
      parseConfig({
        targets: { t: { type: 'null' } },
        routes: { r: { streams: ['s'], target: 't' } },
        mqtt: {
          allowAnonymous: true,
          anonymous: { subscribe: ['a/#/b'] },
          users: [
            {
              username: 'u',
              passwordHash: 'scrypt$16384$8$1$c2FsdA==$aGFzaA==',
              publish: ['x+'],
              denySubscribe: ['ok', 'bad#'],
            },
          ],
        },
      }),
    );
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^mqtt\.anonymous\.subscribe\[0\]: "#" must be a whole level/),
        expect.stringMatching(/^mqtt\.users\[0\]\.publish\[0\]: "\+" must be a whole level/),
        expect.stringMatching(/^mqtt\.users\[0\]\.denySubscribe\[1\]: "#" must be/),
      ]),
    );
    expect(issues).toHaveLength(3);
  });

  it('reports every problem with its config path', () => {
    const issues = issuesOf(() =>
      parseConfig({
        storage: { segmentBytes: 'huge' },
        targets: { t: { type: 'http', url: 'ftp://x' }, u: { type: 'kafka' } },
        routes: {
          r: { streams: ['ok', 'bad/name'], target: 't', probeInterval: '1m', probeIntervalMax: '1s' },
        },
      }),
    );
    expect(issues.join('\n')).toMatch(/storage\.segmentBytes: "huge" is not a size/);
    expect(issues.join('\n')).toMatch(/targets\.t\.url/);
    expect(issues.join('\n')).toMatch(/targets\.u\.type/);
    const cross = issuesOf(() =>
      parseConfig({
        targets: { t: { type: 'null' } },
        routes: {
          r: {
            streams: ['bad/name'],
            target: 't',
            probeInterval: '1m',
            probeIntervalMax: '1s',
            onFull: 'reject-new',
          },
        },
      }),
    );
    expect(cross).toEqual(
      expect.arrayContaining([
        'routes.r.probeIntervalMax: must be at least probeInterval (60000 ms)',
        'routes.r.onFull: reject-new needs a limit: set retention.maxMessages or retention.maxBytes',
        expect.stringMatching(/^streams\.bad\/name: stream names use/),
      ]),
    );
  });

  it('warns about questionable combinations without refusing them', () => {
    const { warnings } = parseConfig({
      targets: { t: { type: 'null' } },
      routes: {
        a: { streams: ['s'], target: 't', ordering: 'lifo', group: 'g' },
        b: {
          streams: ['s'],
          target: 't',
          maxInFlight: 4,
          storeAndForward: false,
          replay: { ratePerSecond: 10 },
        },
      },
    });
    expect(warnings.map((w) => w.path)).toEqual([
      'routes.a.ordering',
      'routes.b.maxInFlight',
      'routes.b.replay.ratePerSecond',
    ]);
  });

  it('ships a JSON Schema in schema/ that matches the zod schema (run `npm run schema` after changing it)', () => {
    const shipped = JSON.parse(
      readFileSync(new URL('../../schema/waystation.schema.json', import.meta.url), 'utf8'),
    );
    expect(shipped).toEqual(JSON.parse(JSON.stringify(configJsonSchema())));
  });

  it('accepts the example configuration shipped in config/', () => {
    const text = readFileSync(new URL('../../config/waystation.yaml', import.meta.url), 'utf8');
    const { routes, warnings } = parseConfig(parseConfigText(text, 'waystation.yaml'));
    expect(routes.map((r) => r.name)).toEqual(['orders-to-archive', 'orders-to-crm']);
    expect(warnings).toEqual([]);
  });
});
