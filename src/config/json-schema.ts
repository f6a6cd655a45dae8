/** The published JSON Schema of the configuration (for editors and CI), derived from the zod schema. */
import { z } from 'zod';
import { configSchema } from './schema.js';

export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  return {
    $schema: schema.$schema,
    $id: 'https://waystation.dev/schema/waystation.schema.json',
    title: 'Waystation configuration',
    description:
      'Keys are camelCase; durations ("200ms", "5s", "7d") and sizes ("64MiB") are strings or numbers (ms, bytes).',
    ...schema,
  };
}
