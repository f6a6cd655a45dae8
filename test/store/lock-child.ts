/** Takes a data directory's LOCK, prints "locked" or the error's code and message, holds until stdin ends. */
import { DataDirLock } from '../../src/store/data-dir-lock.js';

const dir = process.argv[2]!;
try {
  const lock = await DataDirLock.acquire(dir);
  process.stdout.write('locked\n');
  process.stdin.resume();
  process.stdin.on('end', () => void lock.release().then(() => process.exit(0)));
} catch (err) {
  const e = err as { code?: string; message: string };
  process.stdout.write(`${e.code} ${e.message}\n`);
  process.exit(0);
}
