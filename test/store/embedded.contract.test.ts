/** The embedded backend (the segmented log on disk) against the storage contract, on a real disk and on the in-memory file system. */
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { MemFileSystem } from '../support/mem-fs.js';
import { tempDir } from '../support/tmp.js';
import { describeStoreContract } from './contract.js';

const log = { segmentBytes: 8192, blobThreshold: 4096 };

describeStoreContract('embedded log, real disk', {
  largePayloadBytes: 4096,
  place: async () => join(await tempDir('ws-contract-'), 'data'),
  open: (dataDir, layout) => Store.open({ dataDir, ...layout, log }),
});

const disks = new Map<string, MemFileSystem>();
let n = 0;
describeStoreContract('embedded log, in-memory file system', {
  largePayloadBytes: 4096,
  place: async () => {
    const place = `/data-${n++}`;
    disks.set(place, new MemFileSystem());
    return place;
  },
  open: (dataDir, layout) => Store.open({ dataDir, ...layout, log, fileSystem: disks.get(dataDir)! }),
});
