import { describe, expect, it } from 'vitest';
import { clock, type ProgressStream, progressBar } from '../../src/cli/progress.js';

function fakeTerminal(isTTY = true, columns = 120) {
  const writes: string[] = [];
  const stream: ProgressStream = { isTTY, columns, write: (t: string) => writes.push(t) };
  return { stream, writes };
}

describe('progress bar', () => {
  it('draws done/total, rate and ETA, redrawing at most every 100 ms', () => {
    let now = 0;
    const { stream, writes } = fakeTerminal();
    const bar = progressBar({ label: 'export s', unit: 'messages', total: 10_000, stream, now: () => now });
    for (let i = 1; i <= 1000; i++) {
      now = i; // 1000 updates over one second
      bar.set(i);
    }
    expect(writes.length).toBeGreaterThanOrEqual(9);
    expect(writes.length).toBeLessThanOrEqual(11);
    const last = writes.at(-1)!;
    expect(last.startsWith('\r')).toBe(true);
    expect(last).toContain('901/10,000 messages'); // the last redraw, at 901 ms
    expect(last).toMatch(/ 9%/);
    expect(last).toMatch(/1,000 msg\/s/);
    // 9,099 to go at 1,000/s.
    expect(last).toContain('ETA 0:09');
    now = 2000;
    bar.set(10_000);
    bar.finish();
    expect(writes.at(-1)).toBe('\rexport s  10,000 messages in 0:02  5,000 msg/s\x1b[K\n');
  });

  it('follows the current rate, not the average since the start', () => {
    let now = 0;
    const { stream, writes } = fakeTerminal();
    const bar = progressBar({ label: 'x', unit: 'messages', total: 1_000_000, stream, now: () => now });
    // 10 s slow (100/s), then 10 s fast (10,000/s).
    let done = 0;
    for (let t = 100; t <= 20_000; t += 100) {
      now = t;
      done += t <= 10_000 ? 10 : 1000;
      bar.set(done);
    }
    expect(writes.at(-1)).toMatch(/10,000 msg\/s/);
  });

  it('shows bytes for byte totals and no ETA without a total', () => {
    let now = 0;
    const { stream, writes } = fakeTerminal();
    const bytes = progressBar({ label: 'import', unit: 'bytes', total: 5e6, stream, now: () => now });
    now = 1000;
    bytes.set(2.5e6);
    expect(writes.at(-1)).toContain('2.5 MB/5.0 MB');
    expect(writes.at(-1)).toContain('2.5 MB/s');
    const open = progressBar({ label: 'n', unit: 'messages', stream, now: () => now });
    now = 3000;
    open.set(4000);
    expect(writes.at(-1)).not.toContain('ETA');
    expect(writes.at(-1)).toContain('4,000 messages');
  });

  it('never wraps: a line is cut to the terminal width', () => {
    const { stream, writes } = fakeTerminal(true, 30);
    const bar = progressBar({
      label: 'a long label for a narrow terminal',
      unit: 'messages',
      total: 9,
      stream,
    });
    bar.set(1);
    expect(writes.at(-1)!.replace('\r', '').replace('\x1b[K', '').length).toBeLessThan(30);
  });

  it('writes nothing when stderr is not a terminal, or with --json', () => {
    const piped = fakeTerminal(false);
    const a = progressBar({ label: 'x', unit: 'messages', total: 10, stream: piped.stream });
    a.set(5);
    a.finish();
    const json = fakeTerminal(true);
    const b = progressBar({ label: 'x', unit: 'messages', total: 10, stream: json.stream, json: true });
    b.set(5);
    b.finish();
    expect(piped.writes).toEqual([]);
    expect(json.writes).toEqual([]);
  });

  it('clears its line before a failure is printed', () => {
    const { stream, writes } = fakeTerminal();
    const bar = progressBar({ label: 'x', unit: 'messages', total: 10, stream });
    bar.set(1);
    bar.clear();
    expect(writes.at(-1)).toBe('\r\x1b[K');
    bar.set(2);
    bar.finish();
    expect(writes.at(-1)).toBe('\r\x1b[K');
  });

  it('formats durations as m:ss and h:mm:ss', () => {
    expect(clock(0)).toBe('0:00');
    expect(clock(61_000)).toBe('1:01');
    expect(clock(3_723_000)).toBe('1:02:03');
  });
});
