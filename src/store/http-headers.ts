/**
 * Message headers as HTTP header fields. A stored message's headers come from any intake: an MQTT
 * 5 user property may be named `my prop` or carry `€` or a line break, which no HTTP header can
 * (RFC 9110 §5.1 and §5.5; undici refuses them). Sent as they are, such a message would fail at
 * every attempt and hold its route. Pure functions, in the store layer beside the message's
 * headers, for every adapter that sends them (the http and waystation targets, the dead-letter
 * payload endpoint) and the HTTP intake that decodes what a waystation target sent.
 *
 * - A name keeps its RFC 9110 token characters but `%`, lower-cased; every other character (and
 *   `%`) is percent-encoded as its UTF-8 bytes: `My Prop` is sent as `my%20prop`. Two names can
 *   no longer meet in one.
 * - A value that HTTP carries as it is (tab, space, visible ASCII and Latin-1, U+0080–U+00FF,
 *   which Node and undici send as one byte each; no space or tab at either end, which HTTP
 *   trims) is sent unchanged. Any other value, and the value of a field whose name was encoded,
 *   has what HTTP cannot carry, its edge whitespace and every `%` percent-encoded: `5 €` is sent
 *   as `5 %E2%82%AC`, and decodeURIComponent gives the value back.
 * - `Waystation-Encoded-Headers` lists, comma-separated, the fields sent that way, so a receiver
 *   knows what to decode; Waystation's own intake decodes them.
 * - Headers that describe the connection rather than the message (RFC 9110 §7.6.1: `connection`,
 *   `keep-alive`, `transfer-encoding`, …; and `host`, `expect`) are not sent, nor is an empty name,
 *   nor a message header named `waystation-encoded-headers` (the sender's own field).
 */
import { BadRequestError } from '../errors.js';

export const ENCODED_HEADERS = 'waystation-encoded-headers';

const NOT_NAME = /[^!#$&'*+\-.^_`|~0-9a-z]/gu;
const NOT_SENDABLE = /[^\t\x20-\x7e\x80-\xff]/u;
const ESCAPED_IN_VALUE = /[^\t\x20-\x24\x26-\x7e\x80-\xff]/gu;

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
  return name.toLowerCase().replace(NOT_NAME, (c) => percentEncode(c).toLowerCase());
}

// HTTP trims spaces and tabs around a field value (RFC 9110 §5.5): at the edges they are lost.
const EDGE_WHITESPACE = /^[ \t]|[ \t]$/u;
const EDGE_WHITESPACE_RUNS = /^[ \t]+|[ \t]+$/gu;

/** `value` percent-encoded: what HTTP cannot carry, the edge whitespace it would trim, and every `%`. */
function encodeValue(value: string): string {
  return value
    .replace(ESCAPED_IN_VALUE, percentEncode)
    .replace(EDGE_WHITESPACE_RUNS, (run) => [...run].map(percentEncode).join(''));
}

/** `value` as an HTTP field value: unchanged when HTTP carries it as it is. */
export function httpHeaderValue(value: string): string {
  return NOT_SENDABLE.test(value) || EDGE_WHITESPACE.test(value) ? encodeValue(value) : value;
}

/**
 * Adds a message's headers to `into` as HTTP fields (`prefix` before each name), skipping
 * connection headers; the names of the fields it had to encode are added to `encoded`.
 */
export function addHttpHeaders(
  into: Record<string, string>,
  headers: Readonly<Record<string, string>>,
  prefix = '',
  encoded?: string[],
): Record<string, string> {
  for (const k in headers) {
    if (!Object.hasOwn(headers, k)) continue;
    const raw = headers[k]!;
    const name = httpHeaderName(k);
    if (name === '' || (prefix === '' && (CONNECTION_HEADERS.has(name) || name === ENCODED_HEADERS)))
      continue;
    // A field listed as encoded is decoded whole, name and value: an encoded name encodes its value.
    const renamed = name !== k.toLowerCase();
    const value = renamed ? encodeValue(raw) : httpHeaderValue(raw);
    if (encoded && (renamed || value !== raw)) encoded.push(prefix + name);
    // defineProperty: a header named `__proto__` is a field like any other, not the prototype.
    Object.defineProperty(into, prefix + name, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return into;
}

/** Sets one field (`content-type`, `waystation-key`) to `value` as HTTP carries it, noting it in `encoded` if it had to be encoded. */
export function setHttpHeader(
  into: Record<string, string>,
  field: string,
  value: string,
  encoded: string[],
): void {
  const sent = httpHeaderValue(value);
  into[field] = sent;
  if (sent !== value) encoded.push(field);
}

/** `Waystation-Encoded-Headers` as the set of field names it lists. */
export function encodedHeaderNames(value: string | undefined): ReadonlySet<string> {
  if (value === undefined || value === '') return EMPTY;
  return new Set(value.split(',').map((n) => n.trim().toLowerCase()));
}

const EMPTY: ReadonlySet<string> = new Set();

/** A percent-encoded name or value back as it was; a 400 naming the field when it is not valid. */
export function decodeHttpHeader(text: string, field: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new BadRequestError(
      `${field} is listed in Waystation-Encoded-Headers but is not valid percent-encoded UTF-8; send it as it is, or encode it.`,
    );
  }
}
