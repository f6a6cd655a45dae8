#!/usr/bin/env node
/**
 * The `waystation` command (SPEC §5). `start` runs the gateway in this process; `validate`
 * checks a configuration file; every other command talks to a running gateway's HTTP API
 * (`--url`/`WAYSTATION_URL`, `--token`/`WAYSTATION_TOKEN`). Failures print one line and exit 1.
 */
import { createReadStream } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { Command, Option } from 'commander';
import { loadConfigFile } from '../config/load.js';
import { parseConfig } from '../config/resolve.js';
import { starterConfig } from '../config/starter.js';
import { ConfigError, WaystationError } from '../errors.js';
import { Gateway } from '../gateway.js';
import { hashToken } from '../ingest/http/auth.js';
import { hashSecret } from '../ingest/secret-hash.js';
import { VERSION } from '../version.js';
import { purgeInSteps, resubmitAllInSteps } from './bulk.js';
import { ApiClient, ApiError } from './client.js';
import { showCluster } from './cluster-command.js';
import { runExport } from './export.js';
import { ImportFileError, runImport } from './import.js';
import { printTable } from './table.js';
import { tuneYoungGenerationForStreaming } from './v8-tuning.js';

// `waystation routes | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

const program = new Command();
program
  .name('waystation')
  .description('Durable store-and-forward message gateway')
  .version(VERSION)
  .showHelpAfterError();

const urlOption = () =>
  new Option('--url <url>', 'gateway HTTP API').env('WAYSTATION_URL').default('http://127.0.0.1:8080');
const tokenOption = () => new Option('--token <token>', 'bearer token').env('WAYSTATION_TOKEN');
const jsonOption = () => new Option('--json', 'print JSON for scripts');

function client(opts: { url: string; token?: string }): ApiClient {
  return new ApiClient(opts.url, opts.token);
}

program
  .command('start')
  .description('run the gateway (without --config: the embedded default configuration)')
  .option('--config <file>', 'YAML or JSON configuration file')
  .option('--data-dir <dir>', 'data directory (overrides the configuration)')
  .addOption(
    new Option('--log-level <level>', 'log level (overrides WAYSTATION_LOG_LEVEL; default info)').choices(
      LOG_LEVELS,
    ),
  )
  .action(async (opts: { config?: string; dataDir?: string; logLevel?: string }) => {
    tuneYoungGenerationForStreaming();
    const gateway = await Gateway.start({
      configPath: opts.config,
      dataDir: opts.dataDir,
      logLevel: opts.logLevel,
    });
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        gateway.logger.warn(`${signal} again: exiting now`);
        process.exit(1);
      }
      stopping = true;
      gateway.logger.info(`${signal} received`);
      gateway.close().then(
        () => process.exit(0),
        (err: unknown) => {
          gateway.logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });

program
  .command('validate')
  .description('check a configuration file: errors exit 1, warnings are printed and exit 0')
  .requiredOption('--config <file>', 'YAML or JSON configuration file')
  .action(async (opts: { config: string }) => {
    const { warnings, routes, streams } = parseConfig(await loadConfigFile(opts.config));
    for (const w of warnings) process.stdout.write(`warning: ${w.path}: ${w.message}\n`);
    process.stdout.write(`${opts.config}: valid (${streams.length} streams, ${routes.length} routes)\n`);
  });

program
  .command('init')
  .description('write a commented starter configuration (default ./waystation.yaml) that validate accepts')
  .argument('[file]', 'where to write it; "-" for standard output', 'waystation.yaml')
  .option('--mqtt', 'include the MQTT broker with a store-and-forward topic')
  .option('--force', 'overwrite an existing file')
  .action(async (file: string, opts: { mqtt?: boolean; force?: boolean }) => {
    const text = starterConfig({ mqtt: opts.mqtt });
    if (file === '-') {
      process.stdout.write(text);
      return;
    }
    try {
      await writeFile(file, text, { flag: opts.force ? 'w' : 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST')
        throw new UsageError(`${file} exists; pass --force to overwrite it, or name another file`);
      throw new UsageError(`cannot write ${file}: ${(err as Error).message}`);
    }
    process.stdout.write(
      `wrote ${file}\nnext: waystation validate --config ${file} && waystation start --config ${file}\n`,
    );
  });

program
  .command('status')
  .description('health, streams and routes of a running gateway')
  .addOption(urlOption())
  .addOption(tokenOption())
  .addOption(jsonOption())
  .action(async (opts: { url: string; token?: string; json?: boolean }) => {
    const api = client(opts);
    const ready = await api
      .get<{ status: string }>('/readyz')
      .catch((err: unknown) => ({ status: String(err) }));
    const { streams } = await api.get<{ streams: Record<string, unknown>[] }>('/v1/streams');
    const { routes } = await api.get<{ routes: Record<string, unknown>[] }>('/v1/routes');
    if (opts.json) return print({ ready: ready.status === 'ready', streams, routes });
    process.stdout.write(`${opts.url}: ${ready.status}\n\n`);
    printTable(streams, ['name', 'firstSeq', 'lastSeq', 'messages', 'bytes']);
    process.stdout.write('\n');
    printRoutes(routes);
  });

program
  .command('publish')
  .description('publish one message from a file or stdin; prints its id once durable')
  .argument('<stream>')
  .option('--key <key>', 'ordering key')
  .option('--header <k=v>', 'message header (repeatable)', (v: string, all: string[]) => [...all, v], [])
  .option('--ttl <duration>', 'time to live, e.g. 30s')
  .option('--idempotency-key <key>', 'a retry with the same key returns the first id')
  .option('--content-type <type>', 'content type of the payload')
  .option('--file <file>', 'payload file (default: stdin)')
  .addOption(urlOption())
  .addOption(tokenOption())
  .addOption(jsonOption())
  .action(async (stream: string, opts: PublishOpts) => {
    const headers: Record<string, string> = {};
    for (const h of opts.header) {
      const at = h.indexOf('=');
      if (at < 1) throw new UsageError(`--header "${h}" must be name=value`);
      headers[`waystation-header-${h.slice(0, at).toLowerCase()}`] = h.slice(at + 1);
    }
    if (opts.key !== undefined) headers['waystation-key'] = opts.key;
    if (opts.ttl !== undefined) headers['waystation-ttl'] = opts.ttl;
    if (opts.idempotencyKey !== undefined) headers['idempotency-key'] = opts.idempotencyKey;
    headers['content-type'] = opts.contentType ?? 'application/octet-stream';
    let body: NodeJS.ReadableStream = process.stdin;
    if (opts.file !== undefined) {
      const size = (await stat(opts.file)).size;
      headers['content-length'] = String(size);
      body = createReadStream(opts.file);
      if (process.stderr.isTTY && size > 8 * 1024 * 1024) body = body.pipe(progress(size));
    }
    const ref = await client(opts).send<{ id: string; seq: number }>(
      'POST',
      `/v1/streams/${encodeURIComponent(stream)}/messages`,
      body,
      headers,
    );
    if (opts.json) return print(ref);
    process.stdout.write(`${ref.id}\n`);
  });

program
  .command('cluster')
  .description('cluster mode: the nodes, their heartbeats and which node delivers each route')
  .addOption(urlOption())
  .addOption(tokenOption())
  .addOption(jsonOption())
  .action(async (opts: { url: string; token?: string; json?: boolean }) => {
    await showCluster(client(opts), opts.json === true);
  });

program
  .command('routes')
  .description('routes with state and counters')
  .addOption(urlOption())
  .addOption(tokenOption())
  .addOption(jsonOption())
  .action(async (opts: { url: string; token?: string; json?: boolean }) => {
    const { routes } = await client(opts).get<{ routes: Record<string, unknown>[] }>('/v1/routes');
    if (opts.json) return print(routes);
    printRoutes(routes);
  });

program
  .command('route')
  .description('store (hold) or forward a route')
  .argument('<action>', 'store | forward')
  .argument('<name>')
  .addOption(urlOption())
  .addOption(tokenOption())
  .addOption(jsonOption())
  .action(async (action: string, name: string, opts: { url: string; token?: string; json?: boolean }) => {
    if (action !== 'store' && action !== 'forward')
      throw new UsageError(`route action must be store or forward, not "${action}"`);
    const snap = await client(opts).send<Record<string, unknown>>(
      'POST',
      `/v1/routes/${encodeURIComponent(name)}/${action}`,
    );
    if (opts.json) return print(snap);
    process.stdout.write(`${name}: ${snap.state}\n`);
  });

program
  .command('purge')
  .description('purge all pending messages of a route, or the oldest N')
  .argument('<route>')
  .option('--top <n>', 'only the oldest N', (v) => Number(v))
  .addOption(urlOption())
  .addOption(tokenOption())
  .addOption(jsonOption())
  .action(async (route: string, opts: { url: string; token?: string; json?: boolean; top?: number }) => {
    // A large purge goes in steps, with a progress bar on a terminal (bulk.ts).
    const res = await purgeInSteps(client(opts), route, opts.top, opts.json);
    if (opts.json) return print(res);
    process.stdout.write(`${route}: ${res.purged} messages purged\n`);
  });

program
  .command('dlq')
  .description('dead letters of a route: list | show | resubmit | delete | export')
  .argument('<action>', 'list | show | resubmit | delete | export')
  .argument('<route>')
  .argument('[ids...]', 'dead letter (message) ids')
  .option('--all', 'resubmit or delete all of them')
  .option('--out <file>', 'export: the NDJSON file to write (gzip when it ends in .gz; "-" for stdout)')
  .addOption(urlOption())
  .addOption(tokenOption())
  .addOption(jsonOption())
  .action(async (action: string, route: string, ids: string[], opts: DlqOpts) => {
    const api = client(opts);
    const base = `/v1/routes/${encodeURIComponent(route)}/dead-letters`;
    if (action === 'export') {
      if (opts.out === undefined) throw new UsageError('dlq export needs --out FILE (or --out - for stdout)');
      const res = await runExport({
        url: opts.url,
        token: opts.token,
        path: `${base}/export`,
        out: opts.out,
        label: `dlq export ${route}`,
        json: opts.json,
      });
      reportExport(res, `dead letters of route ${route}`, opts.json);
      return;
    }
    if (action === 'list' || action === 'show') {
      const { deadLetters } = await api.get<{ deadLetters: Record<string, unknown>[] }>(base);
      const shown = action === 'show' ? deadLetters.filter((d) => ids.includes(String(d.id))) : deadLetters;
      if (action === 'show' && shown.length === 0)
        throw new UsageError(`no dead letter ${ids.join(', ')} on route ${route}`);
      if (opts.json || action === 'show') return print(shown);
      return printTable(shown, ['id', 'stream', 'seq', 'reason', 'attempts', 'lastError']);
    }
    if (action !== 'resubmit' && action !== 'delete')
      throw new UsageError(`dlq action must be list, show, resubmit, delete or export`);
    if (!opts.all && ids.length === 0) throw new UsageError(`name the ids to ${action}, or pass --all`);
    const body = JSON.stringify(opts.all ? { all: true } : { ids });
    const res =
      action === 'resubmit'
        ? opts.all
          ? // Many dead letters go in steps, with a progress bar on a terminal (bulk.ts).
            await resubmitAllInSteps(api, route, opts.json)
          : await api.send<{ resubmitted: number }>('POST', `${base}/resubmit`, body, {
              'content-type': 'application/json',
            })
        : await api.send<{ deleted: number }>('DELETE', base, body, { 'content-type': 'application/json' });
    if (opts.json) return print(res);
    process.stdout.write(
      `${route}: ${Object.values(res)[0]} dead letters ${action === 'resubmit' ? 'resubmitted' : 'deleted'}\n`,
    );
  });

program
  .command('export')
  .description("write a stream's messages, or a route's pending ones, to an NDJSON file (gzip with .gz)")
  .option('--stream <stream>', 'the stream to export')
  .option('--from-seq <n>', 'from this seq on (default: the first held)', (v) => integer(v, '--from-seq'))
  .option('--to-seq <n>', 'up to this seq (default: the last when the export starts)', (v) =>
    integer(v, '--to-seq'),
  )
  .option('--route <route>', 'the route whose pending messages to export (with --pending)')
  .option('--pending', "a route's pending messages")
  .requiredOption('--out <file>', 'the file to write; gzip when it ends in .gz; "-" for stdout')
  .addOption(urlOption())
  .addOption(tokenOption())
  .addOption(jsonOption())
  .action(async (opts: ExportOpts) => {
    let path: string;
    let what: string;
    if (opts.stream !== undefined) {
      if (opts.route !== undefined || opts.pending)
        throw new UsageError('export either --stream S [--from-seq N] [--to-seq M] or --route R --pending');
      const query = new URLSearchParams();
      if (opts.fromSeq !== undefined) query.set('fromSeq', String(opts.fromSeq));
      if (opts.toSeq !== undefined) query.set('toSeq', String(opts.toSeq));
      const q = query.size > 0 ? `?${query}` : '';
      path = `/v1/streams/${encodeURIComponent(opts.stream)}/export${q}`;
      what = `stream ${opts.stream}`;
    } else if (opts.route !== undefined) {
      if (!opts.pending)
        throw new UsageError(
          'a route exports its pending messages: add --pending (a whole stream: export --stream S)',
        );
      if (opts.fromSeq !== undefined || opts.toSeq !== undefined)
        throw new UsageError('--from-seq and --to-seq go with --stream, not --route');
      path = `/v1/routes/${encodeURIComponent(opts.route)}/export?pending=true`;
      what = `pending messages of route ${opts.route}`;
    } else throw new UsageError('export needs --stream S or --route R --pending');
    const res = await runExport({
      url: opts.url,
      token: opts.token,
      path,
      out: opts.out,
      label: `export ${opts.stream ?? opts.route}`,
      json: opts.json,
    });
    reportExport(res, what, opts.json);
  });

program
  .command('import')
  .description(
    'publish the messages of an export file to a stream, keeping keys, headers and TTLs; idempotent',
  )
  .argument('<file>', 'a file written by export or dlq export (gzip or not)')
  .requiredOption('--stream <stream>', 'the stream to publish to')
  .addOption(urlOption())
  .addOption(tokenOption())
  .addOption(jsonOption())
  .action(async (file: string, opts: { stream: string; url: string; token?: string; json?: boolean }) => {
    const res = await runImport({
      url: opts.url,
      token: opts.token,
      stream: opts.stream,
      file,
      json: opts.json,
    });
    if (opts.json) return print(res);
    process.stdout.write(
      `imported ${res.imported} messages into ${res.stream} (${res.duplicates} already there, ${res.expired} expired)\n`,
    );
  });

function reportExport(
  res: { exported: number; bytes: number; file: string },
  what: string,
  json: boolean | undefined,
): void {
  if (json) {
    print(res);
    return;
  }
  // With --out - the messages are on stdout: the summary goes to stderr.
  const out = res.file === '-' ? process.stderr : process.stdout;
  out.write(`exported ${res.exported} messages (${what}) to ${res.file === '-' ? 'stdout' : res.file}\n`);
}

interface ExportOpts {
  stream?: string;
  fromSeq?: number;
  toSeq?: number;
  route?: string;
  pending?: boolean;
  out: string;
  url: string;
  token?: string;
  json?: boolean;
}

const topics = program.command('topics').description('MQTT store-and-forward topics');

topics
  .command('list')
  .description('store-and-forward topics with their stream and subscribers')
  .addOption(urlOption())
  .addOption(tokenOption())
  .addOption(jsonOption())
  .action(async (opts: { url: string; token?: string; json?: boolean }) => {
    const { topics: list } = await client(opts).get<{ topics: TopicRow[] }>('/v1/mqtt/topics');
    if (opts.json) return print(list);
    printTable(
      list.map((t) => ({
        ...t,
        retention: t.retention === 'forever' ? 'forever' : `${t.retention.period} ${t.retention.unit}`,
        subscribers: t.subscribers.length,
        behind: t.subscribers.reduce((n, s) => n + s.behind, 0),
      })),
      [
        'topic',
        'stream',
        'source',
        'messages',
        'retention',
        'maxDeliveryRatePerSecond',
        'subscribers',
        'behind',
      ],
    );
  });

topics
  .command('create')
  .description('create a store-and-forward topic (FairCom EDGE semantics; see docs/mqtt.md)')
  .argument('<topic>', 'topic filter, e.g. "plant/+/temp"')
  .requiredOption('--stream <name>', 'the new stream that stores its messages')
  .option('--retention <period>', 'e.g. "3 month", "12 hour" or "forever"', 'forever')
  .option('--rate <n>', 'maxDeliveryRatePerSecond', '100')
  .option('--new-subscribers <mode>', 'NewMessages | StoredMessages', 'NewMessages')
  .option('--max-stored <n>', 'newSubscriberMaxStoredMessages: a number or "all"', '1000')
  .addOption(urlOption())
  .addOption(tokenOption())
  .addOption(jsonOption())
  .action(async (topic: string, opts: TopicCreateOpts) => {
    const body = {
      topic,
      stream: opts.stream,
      retention: parseRetention(opts.retention),
      maxDeliveryRatePerSecond: integer(opts.rate, '--rate'),
      newSubscriberDeliveryMode: opts.newSubscribers,
      newSubscriberMaxStoredMessages:
        opts.maxStored === 'all' ? 'all' : integer(opts.maxStored, '--max-stored'),
    };
    const created = await client(opts).send<TopicRow>('POST', '/v1/mqtt/topics', JSON.stringify(body), {
      'content-type': 'application/json',
    });
    if (opts.json) return print(created);
    process.stdout.write(`created ${created.topic} (stream ${created.stream})\n`);
  });

topics
  .command('remove')
  .description('remove a store-and-forward topic: deletes its stream, data files and subscriber tracking')
  .argument('<topic>', 'the topic filter or its stream name')
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(async (topic: string, opts: { url: string; token?: string }) => {
    await client(opts).send('DELETE', `/v1/mqtt/topics/${encodeURIComponent(topic)}`);
    process.stdout.write(`removed ${topic}\n`);
  });

interface TopicRow {
  topic: string;
  stream: string;
  retention: 'forever' | { period: number; unit: string };
  subscribers: { clientId: string; behind: number }[];
  [key: string]: unknown;
}

interface TopicCreateOpts {
  stream: string;
  retention: string;
  rate: string;
  newSubscribers: string;
  maxStored: string;
  url: string;
  token?: string;
  json?: boolean;
}

function parseRetention(text: string): 'forever' | { period: number; unit: string } {
  if (text === 'forever') return 'forever';
  const m = /^(\d+)\s*(minute|hour|day|week|month|year)s?$/.exec(text.trim());
  if (!m) throw new UsageError(`--retention must be like "3 month", "12 hour" or "forever", not "${text}"`);
  return { period: Number(m[1]), unit: m[2]! };
}

function integer(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} must be a whole number, not "${text}"`);
  return n;
}

program
  .command('hash-token')
  .description('print the tokenHash to put in auth.tokens for a token (a new random one if none is given)')
  .argument('[token]')
  .action((token?: string) => {
    const value = token ?? randomToken();
    if (!token) process.stdout.write(`token:     ${value}\n`);
    // The hash is fast to check, so only a long random token resists guessing.
    else if (token.length < 24)
      process.stderr.write(
        'waystation: warning: use a long random token (24+ characters); omit it to get one\n',
      );
    process.stdout.write(`tokenHash: ${hashToken(value)}\n`);
  });

program
  .command('hash-password')
  .description('print the passwordHash (scrypt) to put in mqtt.users for a password')
  .argument('<password>')
  .action((password: string) => {
    process.stdout.write(`passwordHash: ${hashSecret(password)}\n`);
  });

interface PublishOpts {
  key?: string;
  header: string[];
  ttl?: string;
  idempotencyKey?: string;
  contentType?: string;
  file?: string;
  url: string;
  token?: string;
  json?: boolean;
}

interface DlqOpts {
  all?: boolean;
  out?: string;
  url: string;
  token?: string;
  json?: boolean;
}

class UsageError extends Error {}

/** Shows how much of a large upload went out, on the terminal. */
function progress(total: number): Transform {
  let sent = 0;
  let shown = -1;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      sent += chunk.byteLength;
      const percent = Math.floor((sent / total) * 100);
      if (percent !== shown) {
        shown = percent;
        process.stderr.write(`\r  ${percent}%  ${(sent / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB`);
        if (sent >= total) process.stderr.write('\n');
      }
      done(null, chunk);
    },
  });
}

function randomToken(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64url');
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function printRoutes(routes: Record<string, unknown>[]): void {
  printTable(routes, [
    'name',
    'state',
    'inQueue',
    'inFlight',
    'forwarded',
    'deadLettered',
    'expired',
    'pruned',
    'lastError',
  ]);
}

/**
 * A failure as one line: what happened, and for Waystation errors their stable code. The stack
 * trace only at log level debug or trace (--log-level, or WAYSTATION_LOG_LEVEL).
 */
function failureLine(err: unknown): string {
  if (err instanceof ConfigError) {
    const issues = err.issues.map((i) => `${i.path || '(root)'}: ${oneLine(i.message)}`);
    return `Invalid configuration: ${issues.join('; ')} (${err.code})`;
  }
  if (err instanceof WaystationError) return `${oneLine(err.message)} (${err.code})`;
  if (err instanceof ApiError || err instanceof UsageError || err instanceof ImportFileError)
    return oneLine(err.message);
  const what = err instanceof Error ? err.message : String(err);
  return `unexpected failure: ${oneLine(what)} (WAYSTATION_LOG_LEVEL=debug shows the stack trace)`;
}

function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, '; ');
}

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`waystation: ${failureLine(err)}\n`);
  const level =
    program.commands.find((c) => c.name() === 'start')?.opts().logLevel ?? process.env.WAYSTATION_LOG_LEVEL;
  if ((level === 'debug' || level === 'trace') && err instanceof Error && err.stack) {
    process.stderr.write(`${err.stack}\n`);
  }
  process.exit(1);
});
