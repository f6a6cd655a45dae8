/**
 * What `/metrics` shows a stream-limited token (SPEC §8): every series labelled with a stream,
 * a route or an MQTT topic out of the token's reach is left out; unlabelled process, log and
 * broker-wide series stay. Works on the Prometheus text format, so every metric (present and
 * future) that carries one of these labels is covered without a list to keep in step.
 */
import type { Principal } from '../ingest/http/auth.js';

export interface MetricsReach {
  principal: Principal;
  /** The streams a route reads (undefined: no such route). */
  routeStreams(route: string): readonly string[] | undefined;
  /** The stream of a store-and-forward topic filter (undefined: no such topic). */
  topicStream(topic: string): string | undefined;
}

const SAMPLE = /^[a-zA-Z_:][a-zA-Z0-9_:]*\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\}/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function unescapeLabel(value: string): string {
  return value.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

export function filterMetricsText(text: string, reach: MetricsReach): string {
  const { principal } = reach;
  if (principal.unlimited) return text;
  const within = (name: string, value: string): boolean => {
    if (name === 'stream') return principal.reaches(value);
    if (name === 'route') {
      const streams = reach.routeStreams(value);
      return streams?.every((s) => principal.reaches(s)) ?? false;
    }
    if (name === 'topic') {
      const stream = reach.topicStream(value);
      return stream !== undefined && principal.reaches(stream);
    }
    return true;
  };
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = SAMPLE.exec(line);
    if (m) {
      let keep = true;
      for (const [, name, value] of m[1]!.matchAll(LABEL)) {
        if (!within(name!, unescapeLabel(value!))) {
          keep = false;
          break;
        }
      }
      if (!keep) continue;
    }
    out.push(line);
  }
  return out.join('\n');
}
