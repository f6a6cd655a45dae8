/**
 * The embedded default configuration `waystation start` runs without --config: data in ./data,
 * the HTTP API on 127.0.0.1:8080 (loopback only: no tokens are configured), one stream `events`,
 * and a route that appends it to ./data/out/events.ndjson — so it works out of the box.
 */
import type { WaystationConfigInput } from './schema.js';

export const defaultConfig: WaystationConfigInput = {
  dataDir: './data',
  http: { listen: '127.0.0.1:8080' },
  streams: { events: {} },
  targets: { archive: { type: 'file', path: './data/out/events.ndjson' } },
  routes: { 'events-to-archive': { streams: ['events'], target: 'archive' } },
};
