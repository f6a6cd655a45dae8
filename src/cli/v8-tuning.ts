/**
 * V8 settings for the gateway process (`waystation start`), applied once before it takes traffic.
 *
 * Streaming a large body through the gateway allocates a fresh buffer per socket or file read
 * (64 KiB), garbage as soon as it is written on. V8 reclaims such buffers with a young-generation
 * collection once the young objects' buffers add up to twice the default semi-space size: 32 MB in
 * V8 11 and 12 (Node 20 and 22). V8 13 (Node 24) raised the default new-space capacity from 8 to
 * 32 MB (doubled, as Node is built without pointer compression), which moves that trigger to
 * 128 MB. The 64 MB external-memory limit comes first and starts an incremental full collection
 * instead, which takes tens of milliseconds to finish while the stream goes on: a 256 MiB upload
 * raised the peak RSS by ~75 MB instead of ~37 (docs/benchmarks.md, "Node 20, 22 and 24").
 *
 * Setting V8 12's default again brings back Node 20's figures. V8 reads this value when it
 * allocates a buffer's memory (the trigger above) and when it sizes the young generation, which
 * at start-up is far below either bound. Skipped on V8 before 13 (the default already) and when
 * the operator passed the flag to node themselves.
 */
import { setFlagsFromString } from 'node:v8';

const FLAG = '--scavenger-max-new-space-capacity-mb';
const V8_12_DEFAULT_MB = 8;

/** Applies the setting above; returns whether it did. */
export function tuneYoungGenerationForStreaming(
  v8Version: string = process.versions.v8,
  execArgv: readonly string[] = process.execArgv,
): boolean {
  const major = Number.parseInt(v8Version, 10);
  if (!(major >= 13)) return false;
  if (execArgv.some((arg) => arg === FLAG || arg.startsWith(`${FLAG}=`))) return false;
  setFlagsFromString(`${FLAG}=${V8_12_DEFAULT_MB}`);
  return true;
}
