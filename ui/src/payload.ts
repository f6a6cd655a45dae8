/** A dead letter's payload shown as text, pretty JSON or a hex dump (pure, for the payload dialog). */

export type PayloadMode = 'text' | 'json' | 'hex';

const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lenient = new TextDecoder('utf-8', { ignoreBOM: true });

/** The payload as UTF-8; invalid sequences show as U+FFFD. */
export function asText(bytes: Uint8Array): string {
  return lenient.decode(bytes);
}

/** Pretty JSON, or why the bytes are not JSON. */
export function asJson(bytes: Uint8Array): { ok: true; text: string } | { ok: false; why: string } {
  try {
    return { ok: true, text: JSON.stringify(JSON.parse(strict.decode(bytes)), null, 2) };
  } catch (err) {
    return { ok: false, why: err instanceof Error ? err.message : String(err) };
  }
}

/** Offset, 16 bytes in hex, and those bytes as printable ASCII, per line. */
export function asHex(bytes: Uint8Array): string {
  const lines: string[] = [];
  for (let at = 0; at < bytes.length; at += 16) {
    const row = bytes.subarray(at, at + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${at.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${ascii}`);
  }
  return lines.join('\n');
}

/** What to show first: JSON for a JSON payload, text for UTF-8, hex otherwise. */
export function bestMode(bytes: Uint8Array, contentType: string | null): PayloadMode {
  const type = contentType?.split(';')[0]?.trim().toLowerCase() ?? '';
  if ((type === 'application/json' || type.endsWith('+json') || type === '') && asJson(bytes).ok)
    return 'json';
  try {
    strict.decode(bytes);
  } catch {
    return 'hex';
  }
  // Control characters other than tab, newline and carriage return read better as hex.
  return bytes.some((b) => b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) ? 'hex' : 'text';
}
