/**
 * The package's version, read from its package.json (one level above `src/` and `dist/` alike),
 * so `waystation --version`, the OpenAPI document and logs never disagree with what is installed.
 */
import { readFileSync } from 'node:fs';

export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
