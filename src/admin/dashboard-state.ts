/**
 * The dashboard's state files (route history, route timeline) in `<dataDir>/dashboard/`: atomic,
 * checksummed files (src/log/atomic-file.ts) written through the broker's StateFile. They hold
 * what helps an operator, not messages, so a file that cannot be read never stops the gateway.
 */

import type { StorageFileSystem } from '../log/index.js';
import { StateFile } from '../log/index.js';

/**
 * Reads a dashboard state file into `restore`. A file that cannot be read or restored (damaged,
 * truncated, not this format) is moved aside to `<path>.damaged` with a warning: the dashboard's
 * history is worth less than a gateway that starts.
 */
export async function loadStateFile(
  fs: StorageFileSystem,
  path: string,
  onWarning: (message: string, err?: unknown) => void,
  restore: (content: unknown) => void,
): Promise<void> {
  try {
    const content = await StateFile.read(path, fs);
    if (content !== undefined) restore(content);
  } catch (err) {
    onWarning(
      `${path} is damaged or not a dashboard state file; moved aside to ${path}.damaged, starting empty`,
      err,
    );
    await fs.rename(path, `${path}.damaged`).catch(() => {});
  }
}
