/**
 * Writes schema/waystation.schema.json from the zod configuration schema (the source of truth).
 * `npm run schema`; a test fails when the checked-in file is stale.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configJsonSchema } from '../src/config/json-schema.js';

const out = fileURLToPath(new URL('../schema/waystation.schema.json', import.meta.url));
writeFileSync(out, `${JSON.stringify(configJsonSchema(), null, 2)}\n`);
process.stdout.write(`wrote ${out}\n`);
