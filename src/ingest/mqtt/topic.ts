/**
 * MQTT topic names and topic filters: validation and matching per MQTT 3.1.1 §4.7 / 5.0 §4.7,
 * and shared subscriptions (`$share/<group>/<filter>`, MQTT 5.0 §4.8.2). Pure functions.
 */

const MAX_TOPIC_BYTES = 65535;

/** Topic names are also checked in stored messages' headers, a layer below (src/store/mqtt-headers.ts). */
export { topicNameProblem } from '../../store/mqtt-headers.js';

/** Why a topic filter is invalid, or undefined when it is valid. */
export function topicFilterProblem(filter: string): string | undefined {
  if (filter.length === 0) return 'a topic filter must not be empty [MQTT-4.7.3-1]';
  if (Buffer.byteLength(filter) > MAX_TOPIC_BYTES) return 'a topic filter is at most 65535 bytes';
  if (filter.includes('\u0000')) return 'a topic filter must not contain U+0000 [MQTT-4.7.3-2]';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1))
      return '"#" must be a whole level and the last one [MQTT-4.7.1-2]';
    if (level.includes('+') && level !== '+') return '"+" must be a whole level [MQTT-4.7.1-3]';
  }
  return undefined;
}

export function hasWildcard(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
}

/**
 * Whether `topic` matches `filter`. Topics starting with "$" are not matched by filters
 * starting with a wildcard [MQTT-4.7.2-1].
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  let f = 0;
  let t = 0;
  for (;;) {
    const fEnd = filter.indexOf('/', f);
    const fLevel = fEnd === -1 ? filter.slice(f) : filter.slice(f, fEnd);
    if (fLevel === '#') return true;
    if (t > topic.length) return false;
    const tEnd = topic.indexOf('/', t);
    const tLevel = tEnd === -1 ? topic.slice(t) : topic.slice(t, tEnd);
    if (fLevel !== '+' && fLevel !== tLevel) return false;
    if (fEnd === -1 && tEnd === -1) return true;
    if (fEnd === -1) return false;
    if (tEnd === -1) {
      // "a/#" also matches "a" [MQTT-4.7.1-2]
      return filter.slice(fEnd + 1) === '#';
    }
    f = fEnd + 1;
    t = tEnd + 1;
  }
}

export interface SharedFilter {
  group: string;
  filter: string;
}

/** `$share/<group>/<filter>` split into its parts; undefined for an ordinary filter; throws a reason when malformed. */
export function parseShared(filter: string): SharedFilter | undefined {
  if (!filter.startsWith('$share/')) return undefined;
  const rest = filter.slice('$share/'.length);
  const slash = rest.indexOf('/');
  const group = slash === -1 ? rest : rest.slice(0, slash);
  if (slash === -1 || group.length === 0 || group.includes('+') || group.includes('#'))
    throw new Error('a shared subscription is "$share/<group>/<filter>" with a group name without wildcards');
  const inner = rest.slice(slash + 1);
  const problem = topicFilterProblem(inner);
  if (problem) throw new Error(problem);
  return { group, filter: inner };
}

/**
 * Whether some topic name matches both filters (e.g. `plant/#` and `plant/+/temp`, or `#` and
 * any filter not starting with "$"); `other/#` and `plant/+/temp` are disjoint. Names starting
 * with "$" are matched by no filter starting with a wildcard [MQTT-4.7.2-1].
 */
export function filtersOverlap(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  const wild = (l: string) => l === '+' || l === '#';
  if ((wild(x[0]!) && y[0]!.startsWith('$')) || (wild(y[0]!) && x[0]!.startsWith('$'))) return false;
  // A common name of one empty level would be "", which is no topic name [MQTT-4.7.3-1].
  const onlyEmpty = (levels: number) => levels === 1 && (x[0] === '' || y[0] === '');
  for (let i = 0; ; i++) {
    const p = x[i];
    const q = y[i];
    // "#" takes any rest, also none when the other ended here ("a/#" matches "a").
    if (p === '#' || q === '#') return !((p === undefined || q === undefined) && onlyEmpty(i));
    // One ended: the other must end here too.
    if (p === undefined || q === undefined) return p === q && !onlyEmpty(i);
    if (p !== '+' && q !== '+' && p !== q) return false;
  }
}
