/**
 * UTF-8 string fields of incoming packets, checked on their raw bytes. mqtt-packet decodes every
 * UTF-8 string (CONNECT client ID, username, will topic; PUBLISH topic; SUBSCRIBE and
 * UNSUBSCRIBE filters; v5 string properties such as Content Type, Response Topic, Reason
 * String, Authentication Method, and user property names and values) through one parser
 * method with `Buffer#toString('utf8')`, which silently replaces ill-formed sequences with
 * U+FFFD. MQTT requires the receiver to close the connection instead: ill-formed UTF-8,
 * surrogate code points and overlong encodings [MQTT-1.5.4-1] (v5: a Malformed Packet, 0x81),
 * and U+0000 [MQTT-1.5.4-2]. A legitimate U+FFFD (EF BF BD) is well-formed and passes.
 */
import { isUtf8 } from 'node:buffer';
import type { Parser } from 'mqtt-packet';

interface ParserInternals {
  _pos: number;
  _list: { slice(start: number, end: number): Buffer };
  _parseString(this: ParserInternals): string | null;
}

/**
 * Makes `parser` report each ill-formed UTF-8 string field: `onProblem` runs while the packet is
 * parsed, before that packet's 'packet' event.
 */
export function checkUtf8Strings(parser: Parser, onProblem: (why: string) => void): void {
  const internals = parser as unknown as ParserInternals;
  const decode = internals._parseString;
  if (typeof decode !== 'function' || !('_list' in internals))
    throw new Error('mqtt-packet changed: its parser has no _parseString to check UTF-8 strings on');
  internals._parseString = function (this: ParserInternals): string | null {
    const start = this._pos + 2; // after the two-byte length
    const s = decode.call(this);
    if (s === null) return s;
    if (s.includes('\u0000')) onProblem('a UTF-8 string contains U+0000 [MQTT-1.5.4-2]');
    // Lossy decoding yields U+FFFD for every ill-formed sequence: only then look at the bytes.
    else if (s.includes('\uFFFD') && !isUtf8(this._list.slice(start, this._pos)))
      onProblem('a UTF-8 string is ill-formed [MQTT-1.5.4-1]');
    return s;
  };
}
