import { describe, expect, it } from 'vitest';
import type { StorageWarning } from '../../src/log/index.js';
import { Store } from '../../src/store/store.js';
import { MemFileSystem } from '../support/mem-fs.js';

const options = (fs: MemFileSystem, warnings: StorageWarning[] = []) => ({
  dataDir: '/data',
  streams: ['s'],
  routes: [{ name: 'r', streams: ['s'] }],
  fileSystem: fs,
  onWarning: (w: StorageWarning) => warnings.push(w),
});

const payload = (text: string) => ({ payload: new TextEncoder().encode(text) });
const temporaryFiles = (fs: MemFileSystem) => [...fs.files.keys()].filter((p) => p.endsWith('.tmp'));

describe('closing the store on a full disk', () => {
  it('saves what it can, warns that the index cache was not saved, and leaves no temporary file', async () => {
    const fs = new MemFileSystem();
    const warnings: StorageWarning[] = [];
    const store = await Store.open(options(fs, warnings));
    for (let i = 0; i < 5; i++) await store.publish('s', [payload(`m${i}`)]);
    fs.capacity = fs.usedBytes();

    // A state file that cannot be replaced keeps its old content and leaves no .tmp behind.
    await expect(store.routeProgress('r').save(new Map())).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(temporaryFiles(fs)).toEqual([]);

    await store.close();
    expect(warnings).toEqual([
      expect.objectContaining({
        file: '/data/streams/s/00000000000000000001.idx',
        message: expect.stringMatching(
          /could not save the segment index .* at close \(ENOSPC\); nothing is lost/,
        ),
      }),
    ]);
    expect(temporaryFiles(fs)).toEqual([]);

    // Everything acknowledged is there after a restart; the index is rebuilt from the segment.
    fs.capacity = Number.POSITIVE_INFINITY;
    const again = await Store.open(options(fs));
    expect(again.stream('s').log.lastSeq).toBe(5);
    expect((await again.readMessage('s', 5))?.seq).toBe(5);
    await again.close();
  });

  it('closes every stream even when one fails, then reports that failure', async () => {
    const fs = new MemFileSystem();
    const store = await Store.open({ ...options(fs), streams: ['a', 'b'], routes: [] });
    await store.publish('a', [payload('x')]);
    await store.publish('b', [payload('y')]);
    fs.failNext('sync', 'EIO');
    await expect(store.close()).rejects.toMatchObject({ code: 'EIO' });
    // Stream b was closed too: appending to it fails as closed.
    await expect(store.stream('b').log.append([{ payload: new Uint8Array(1) }])).rejects.toMatchObject({
      code: 'WS_ERR_LOG_CLOSED',
    });
  });
});
