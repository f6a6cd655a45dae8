// A Waystation `module` target: appends each message's payload, upper-cased, to a text file.
// Configure it with:
//
//   targets:
//     shout: { type: module, path: examples/module-target/uppercase-file-target.mjs,
//              options: { file: ./out/shout.txt, rejectEmpty: true } }
//
// The module exports createTarget(options, context) returning { deliver, start?, stop? }.
// deliver(batch, signal) answers one outcome per message, in order:
//   { kind: 'ack' }                       delivered
//   { kind: 'nack', reason }              transient: Waystation keeps it and retries
//   { kind: 'error', reason }             permanent: Waystation dead-letters it
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

export function createTarget(options, context) {
  // Relative paths resolve like the rest of the configuration's.
  const file = resolve(context.baseDir, String(options.file ?? './out/module-target.txt'));
  return {
    type: 'uppercase-file',
    async start() {
      await mkdir(dirname(file), { recursive: true });
      context.logger.info({ target: context.name, file }, 'uppercase-file target ready');
    },
    async deliver(batch, signal) {
      const outcomes = [];
      for (const message of batch) {
        if (signal.aborted) {
          outcomes.push({ kind: 'nack', reason: 'aborted' });
          continue;
        }
        // Large payloads are not in memory: message.payload is undefined, read openPayload().
        const chunks = [];
        if (message.payload) chunks.push(message.payload);
        else for await (const chunk of message.openPayload()) chunks.push(chunk);
        const text = Buffer.concat(chunks).toString('utf8');
        if (options.rejectEmpty && text.length === 0) {
          outcomes.push({ kind: 'error', reason: 'empty payloads are not accepted' });
          continue;
        }
        try {
          await appendFile(file, `${message.id} ${text.toUpperCase()}\n`);
          outcomes.push({ kind: 'ack' });
        } catch (err) {
          outcomes.push({ kind: 'nack', reason: `cannot write ${file}: ${err.message}` });
        }
      }
      return outcomes;
    },
  };
}
