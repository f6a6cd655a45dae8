/**
 * Message headers as HTTP header fields. A stored message's headers come from any intake: an MQTT
 * 5 user property may be named `my prop` or carry `€`, which no HTTP header can (RFC 9110 §5.1
 * and §5.5; undici refuses them). Sent as they are, such a message would fail at every attempt
 * and hold its route. Pure functions, in the store layer beside the message's headers, for every
 * adapter that sends them (the http and waystation targets, the dead-letter payload endpoint).
 *
 * - A name keeps its RFC 9110 token characters, lower-cased; every other character is
 *   percent-encoded (its UTF-8 bytes), so `My Prop` is sent as `my%20prop`.
 * - A value keeps visible ASCII, space and tab; every other character is percent-encoded the
 *   same way (`€` is `%E2%82%AC`). A `%` already in a value is left as it is.
 * - Headers that describe the connection rather than the message (RFC 9110 §7.6.1: `connection`,
 *   `keep-alive`, `transfer-encoding`, …; and `host`, `expect`) are not sent, nor is an empty name.
 */

const NOT_TOKEN = /[^!#$%&'*+\-.^_`|~0-9A-Za-z]/gu;
const NOT_FIELD_VALUE = /[^\t\x20-\x7e]/gu;

const CONNECTION_HEADERS = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
  'expect',
]);

function percentEncode(c: string): string {
  let out = '';
  for (const byte of Buffer.from(c, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

/** `name` as an HTTP field name (all lower case, escapes too: the form Node gives received names). */
export function httpHeaderName(name: string): string {
  return name.toLowerCase().replace(NOT_TOKEN, (c) => percentEncode(c).toLowerCase());
}

/** `value` as an HTTP field value. */
export function httpHeaderValue(value: string): string {
  return value.replace(NOT_FIELD_VALUE, percentEncode);
}

/** Adds a message's headers to `into` as HTTP fields (`prefix` before each name), skipping connection headers. */
export function addHttpHeaders(
  into: Record<string, string>,
  headers: Readonly<Record<string, string>>,
  prefix = '',
): Record<string, string> {
  for (const [k, v] of Object.entries(headers)) {
    const name = httpHeaderName(k);
    if (name === '' || (prefix === '' && CONNECTION_HEADERS.has(name))) continue;
    into[prefix + name] = httpHeaderValue(v);
  }
  return into;
}
