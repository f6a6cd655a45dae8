/**
 * Every error Waystation raises on purpose extends `WaystationError` and carries a stable
 * `code` (`WS_ERR_<AREA>_<WHAT>`), documented in docs/errors.md. Codes are never reused or
 * renamed: scripts and alerting match on them. `httpStatus` is what the HTTP API answers.
 *
 * This module is a leaf: every layer may import it, it imports nothing of ours.
 */

export const ErrorCodes = {
  StorageFull: 'WS_ERR_STORAGE_FULL',
  StorageIO: 'WS_ERR_STORAGE_IO',
  StorageTimeout: 'WS_ERR_STORAGE_TIMEOUT',
  StorageCorruptState: 'WS_ERR_STORAGE_CORRUPT_STATE',
  LogClosed: 'WS_ERR_LOG_CLOSED',
  LogRecordTooLarge: 'WS_ERR_LOG_RECORD_TOO_LARGE',
  LogInvalidOptions: 'WS_ERR_LOG_INVALID_OPTIONS',
  LogInvalidArgument: 'WS_ERR_LOG_INVALID_ARGUMENT',
  BlobCorrupt: 'WS_ERR_LOG_BLOB_CORRUPT',
  StreamUnknown: 'WS_ERR_STREAM_UNKNOWN',
  StreamInUse: 'WS_ERR_STREAM_IN_USE',
  MqttTopicUnknown: 'WS_ERR_MQTT_TOPIC_UNKNOWN',
  MqttTopicConflict: 'WS_ERR_MQTT_TOPIC_CONFLICT',
  RouteUnknown: 'WS_ERR_ROUTE_UNKNOWN',
  RouteFull: 'WS_ERR_ROUTE_FULL',
  MessageUnknown: 'WS_ERR_MESSAGE_UNKNOWN',
  DeadLetterUnknown: 'WS_ERR_DEAD_LETTER_UNKNOWN',
  MessageHeaderInvalid: 'WS_ERR_MESSAGE_HEADER_INVALID',
  DataDirLocked: 'WS_ERR_DATA_DIR_LOCKED',
  DataDirUnusable: 'WS_ERR_DATA_DIR_UNUSABLE',
  ConfigInvalid: 'WS_ERR_CONFIG_INVALID',
  TargetUnknownType: 'WS_ERR_TARGET_UNKNOWN_TYPE',
  TargetModuleInvalid: 'WS_ERR_TARGET_MODULE_INVALID',
  WaitTimeout: 'WS_ERR_WAIT_TIMEOUT',
  ShuttingDown: 'WS_ERR_SHUTTING_DOWN',
  AuthRequired: 'WS_ERR_AUTH_REQUIRED',
  AuthForbidden: 'WS_ERR_AUTH_FORBIDDEN',
  HttpBadRequest: 'WS_ERR_HTTP_BAD_REQUEST',
  HttpPayloadTooLarge: 'WS_ERR_HTTP_PAYLOAD_TOO_LARGE',
  HttpNotFound: 'WS_ERR_HTTP_NOT_FOUND',
  IdempotencyKeyReused: 'WS_ERR_IDEMPOTENCY_KEY_REUSED',
  ArgumentInvalid: 'WS_ERR_ARGUMENT_INVALID',
  HttpBodyTimeout: 'WS_ERR_HTTP_BODY_TIMEOUT',
  HttpStagingFull: 'WS_ERR_HTTP_STAGING_FULL',
  HttpClientAborted: 'WS_ERR_HTTP_CLIENT_ABORTED',
  HttpHeadersTooLarge: 'WS_ERR_HTTP_HEADERS_TOO_LARGE',
  HttpUriTooLong: 'WS_ERR_HTTP_URI_TOO_LONG',
  HttpMethodNotAllowed: 'WS_ERR_HTTP_METHOD_NOT_ALLOWED',
  HttpUnsupportedMediaType: 'WS_ERR_HTTP_UNSUPPORTED_MEDIA_TYPE',
  HttpExpectationFailed: 'WS_ERR_HTTP_EXPECTATION_FAILED',
  HttpCrossOrigin: 'WS_ERR_HTTP_CROSS_ORIGIN',
  UiTooManyStreams: 'WS_ERR_UI_TOO_MANY_STREAMS',
  HttpEncodingUnsupported: 'WS_ERR_HTTP_ENCODING_UNSUPPORTED',
  HttpEncodingInvalid: 'WS_ERR_HTTP_ENCODING_INVALID',
  ClusterServerTooOld: 'WS_ERR_CLUSTER_SERVER_TOO_OLD',
  ClusterUnavailable: 'WS_ERR_CLUSTER_UNAVAILABLE',
  ClusterPayloadTooLarge: 'WS_ERR_CLUSTER_PAYLOAD_TOO_LARGE',
  ClusterWriteConflict: 'WS_ERR_CLUSTER_WRITE_CONFLICT',
  ClusterRouteUnowned: 'WS_ERR_CLUSTER_ROUTE_UNOWNED',
  ClusterNotEnabled: 'WS_ERR_CLUSTER_NOT_ENABLED',
  Internal: 'WS_ERR_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface WaystationErrorOptions {
  cause?: unknown;
  httpStatus?: number;
}

export class WaystationError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;

  constructor(code: ErrorCode, message: string, options: WaystationErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.httpStatus = options.httpStatus ?? 500;
  }
}

/**
 * The disk (or a configured limit) has no room. Nothing of the failed append was stored;
 * `unstored` hands the caller back what it asked to store so it can retry or refuse upstream.
 */
export class StorageFullError<T = unknown> extends WaystationError {
  readonly unstored: readonly T[];
  constructor(message: string, unstored: readonly T[] = [], cause?: unknown) {
    super(ErrorCodes.StorageFull, message, { cause, httpStatus: 507 });
    this.unstored = unstored;
  }
}

/** The operating system reported an I/O error. Nothing of the failed append was stored. */
export class StorageIOError<T = unknown> extends WaystationError {
  readonly unstored: readonly T[];
  constructor(message: string, unstored: readonly T[] = [], cause?: unknown) {
    super(ErrorCodes.StorageIO, message, { cause, httpStatus: 500 });
    this.unstored = unstored;
  }
}

/** A write or fsync took longer than `storage.writeTimeout` (SFC WriteTimeout). Nothing was stored. */
export class StorageTimeoutError<T = unknown> extends WaystationError {
  readonly unstored: readonly T[];
  constructor(message: string, unstored: readonly T[] = []) {
    super(ErrorCodes.StorageTimeout, message, { httpStatus: 503 });
    this.unstored = unstored;
  }
}

/** A small persisted state file (cursor, route state, log metadata) failed its checksum. */
export class CorruptStateError extends WaystationError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCodes.StorageCorruptState, message, { cause });
  }
}

export class LogClosedError extends WaystationError {
  constructor(dir: string) {
    super(ErrorCodes.LogClosed, `The log at ${dir} is closed; open it again before appending or reading.`, {
      httpStatus: 503,
    });
  }
}

export class RecordTooLargeError extends WaystationError {
  constructor(message: string) {
    super(ErrorCodes.LogRecordTooLarge, message, { httpStatus: 413 });
  }
}

export class InvalidOptionsError extends WaystationError {
  constructor(message: string) {
    super(ErrorCodes.LogInvalidOptions, message);
  }
}

export class InvalidArgumentError extends WaystationError {
  constructor(message: string) {
    super(ErrorCodes.LogInvalidArgument, message, { httpStatus: 400 });
  }
}

/** A large payload's side file does not match the size or checksum its record promised. */
export class BlobCorruptError extends WaystationError {
  constructor(message: string) {
    super(ErrorCodes.BlobCorrupt, message);
  }
}

export class UnknownStreamError extends WaystationError {
  constructor(stream: string) {
    super(
      ErrorCodes.StreamUnknown,
      `Stream "${stream}" does not exist. Declare it under "streams" (or in a route's "streams") in the configuration.`,
      { httpStatus: 404 },
    );
  }
}

export class StreamInUseError extends WaystationError {
  constructor(
    stream: string,
    readonly routes: readonly string[],
  ) {
    super(
      ErrorCodes.StreamInUse,
      `Stream "${stream}" is read by route(s) ${routes.join(', ')}; it cannot be removed while configured routes read it. Remove it from those routes' "streams" first.`,
      { httpStatus: 409 },
    );
  }
}

export class UnknownMqttTopicError extends WaystationError {
  constructor(topic: string) {
    super(
      ErrorCodes.MqttTopicUnknown,
      `There is no store-and-forward topic "${topic}"; list them with \`waystation topics list\`.`,
      { httpStatus: 404 },
    );
  }
}

/** A store-and-forward topic cannot be created or removed as asked; the message says why. */
export class MqttTopicConflictError extends WaystationError {
  constructor(message: string) {
    super(ErrorCodes.MqttTopicConflict, message, { httpStatus: 409 });
  }
}

export class UnknownRouteError extends WaystationError {
  constructor(route: string) {
    super(
      ErrorCodes.RouteUnknown,
      `Route "${route}" does not exist; list routes with \`waystation routes\`.`,
      {
        httpStatus: 404,
      },
    );
  }
}

export class UnknownDeadLetterError extends WaystationError {
  constructor(route: string, id: string) {
    super(
      ErrorCodes.DeadLetterUnknown,
      `Route "${route}" holds no dead letter "${id}": it was resubmitted or deleted meanwhile, or the id is wrong; list them with GET /v1/routes/${route}/dead-letters.`,
      { httpStatus: 404 },
    );
  }
}

export class UnknownMessageError extends WaystationError {
  constructor(id: string) {
    super(
      ErrorCodes.MessageUnknown,
      `Message "${id}" is not known here: the id is malformed, belongs to another data directory, or its stream's retention removed it.`,
      { httpStatus: 404 },
    );
  }
}

/**
 * A message header the MQTT broker interprets (docs/mqtt.md: `mqtt-qos`, `mqtt-topic`, …) has a
 * value it could not send to MQTT subscribers. Nothing of the publish or batch was stored.
 */
export class InvalidHeaderError extends WaystationError {
  readonly header: string;
  constructor(header: string, value: string, problem: string) {
    super(
      ErrorCodes.MessageHeaderInvalid,
      `Header "${header}" is ${value}: ${problem}. Nothing was stored; fix the header and publish again.`,
      { httpStatus: 400 },
    );
    this.header = header;
  }
}

/** A route with `onFull: reject-new` is at its retention limit: the publish is refused, nothing was stored. */
export class RouteFullError extends WaystationError {
  constructor(route: string, stream: string, limit: string) {
    super(
      ErrorCodes.RouteFull,
      `Route "${route}" is full (${limit}) and its onFull policy is reject-new; the message for stream "${stream}" was not stored. Wait for the route to drain, purge it, or raise its retention limits.`,
      { httpStatus: 507 },
    );
  }
}

export class DataDirLockedError extends WaystationError {
  readonly pid: number;
  /** `detail` says how the holder was recognised, e.g. "on host h, lock refreshed 3 s ago". */
  constructor(dataDir: string, pid: number, detail?: string) {
    super(
      ErrorCodes.DataDirLocked,
      `The data directory ${dataDir} is in use by process ${pid}${detail ? ` (${detail})` : ''}. Stop that process, or point this one at another dataDir.`,
    );
    this.pid = pid;
  }
}

/**
 * The data directory cannot be created, locked or written: it is a file, lies under a file, is
 * read-only, immutable, owned by another user, or its disk is full. The message names the path,
 * the cause (with its errno code) and what to do; `cause` is the operating system's error.
 */
export class DataDirUnusableError extends WaystationError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCodes.DataDirUnusable, message, { cause });
  }
}

export interface ConfigIssue {
  /** Dotted path of the offending key, e.g. "routes.orders-to-crm.target". */
  path: string;
  message: string;
}

export class ConfigError extends WaystationError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    super(
      ErrorCodes.ConfigInvalid,
      `Invalid configuration:\n${issues.map((i) => `  ${i.path || '(root)'}: ${i.message}`).join('\n')}`,
      { httpStatus: 400 },
    );
    this.issues = issues;
  }
}

export class UnknownTargetTypeError extends WaystationError {
  constructor(target: string, type: string, known: readonly string[]) {
    super(
      ErrorCodes.TargetUnknownType,
      `targets.${target}.type "${type}" is not a target type this build knows; use one of ${known.join(', ')}.`,
    );
  }
}

export class TargetModuleError extends WaystationError {
  constructor(target: string, message: string, cause?: unknown) {
    super(ErrorCodes.TargetModuleInvalid, `targets.${target}: ${message}`, { cause });
  }
}

export class WaitTimeoutError extends WaystationError {
  constructor(id: string, timeoutMs: number) {
    super(
      ErrorCodes.WaitTimeout,
      `Message ${id} was not delivered within ${timeoutMs} ms; it is still pending.`,
      {
        httpStatus: 408,
      },
    );
  }
}

export class ShuttingDownError extends WaystationError {
  constructor() {
    super(
      ErrorCodes.ShuttingDown,
      'Waystation is shutting down and accepts no new messages; retry against the restarted instance.',
      {
        httpStatus: 503,
      },
    );
  }
}

export class BadRequestError extends WaystationError {
  constructor(message: string) {
    super(ErrorCodes.HttpBadRequest, message, { httpStatus: 400 });
  }
}

export class PayloadTooLargeError extends WaystationError {
  constructor(limit: number, what = 'The message body') {
    super(
      ErrorCodes.HttpPayloadTooLarge,
      `${what} is larger than ${limit} bytes (http.maxBodyBytes / http.maxBatchBytes); nothing was stored.`,
      { httpStatus: 413 },
    );
  }
}

/** An Idempotency-Key already answered a different request within storage.dedupWindow. */
export class IdempotencyKeyReusedError extends WaystationError {
  constructor(stream: string, key: string) {
    super(
      ErrorCodes.IdempotencyKeyReused,
      `Idempotency-Key "${key}" was already used on stream "${stream}" for a different request (other messages, keys, headers or payloads) within storage.dedupWindow; nothing was stored. Use a new key for a new request; a retry must repeat the request exactly.`,
      { httpStatus: 422 },
    );
  }
}

/** A library call got an argument of the wrong type or value; the message names the parameter. */
export class ArgumentError extends WaystationError {
  constructor(message: string) {
    super(ErrorCodes.ArgumentInvalid, message, { httpStatus: 400 });
  }
}

/** The client stopped sending its body for longer than http.bodyTimeout; nothing was stored. */
export class BodyTimeoutError extends WaystationError {
  constructor(timeoutMs: number) {
    super(
      ErrorCodes.HttpBodyTimeout,
      `No body bytes arrived for ${timeoutMs} ms (http.bodyTimeout); the request was ended and nothing was stored. Send the body without pauses, or raise http.bodyTimeout.`,
      { httpStatus: 408 },
    );
  }
}

/** Too many body bytes are being staged at once (http.maxStagingBytes); retry shortly. */
export class StagingFullError extends WaystationError {
  constructor(limit: number) {
    super(
      ErrorCodes.HttpStagingFull,
      `Uploads in progress already hold ${limit} bytes (http.maxStagingBytes); nothing was stored. Retry shortly, or raise http.maxStagingBytes.`,
      { httpStatus: 503 },
    );
  }
}

/** The client closed the connection before its request body was complete; nothing was stored. */
export class ClientAbortedError extends WaystationError {
  constructor() {
    super(
      ErrorCodes.HttpClientAborted,
      'The client closed the connection before the request body was complete; nothing was stored.',
      { httpStatus: 400 },
    );
  }
}

/** A request's Content-Encoding names a coding the gateway does not decode; nothing was stored. */
export class UnsupportedEncodingError extends WaystationError {
  constructor(encoding: string) {
    super(
      ErrorCodes.HttpEncodingUnsupported,
      `Content-Encoding "${encoding}" is not supported; nothing was stored. Send the body as gzip, br or identity, one or two codings (e.g. "gzip" or "gzip, br").`,
      { httpStatus: 415 },
    );
  }
}

/** A compressed body could not be decoded (corrupt or truncated gzip/br); nothing was stored. */
export class InvalidEncodingError extends WaystationError {
  constructor(encoding: string, cause: unknown) {
    super(
      ErrorCodes.HttpEncodingInvalid,
      `The body is not valid ${encoding} (${(cause as Error).message ?? String(cause)}); nothing was stored. Check the client's compression, or send the body uncompressed.`,
      { httpStatus: 400, cause },
    );
  }
}

/**
 * Cluster mode reached a nats-server older than 2.11 (2.9 silently ignores per-key TTLs; message
 * TTLs and consumer pause need 2.11), or one that does not say its version. Refused at connect.
 */
export class ClusterServerTooOldError extends WaystationError {
  readonly server: string;
  readonly version: string;
  constructor(server: string, version: string, minimum: string) {
    super(
      ErrorCodes.ClusterServerTooOld,
      `NATS server ${server} runs nats-server ${version || '(unknown version)'}; cluster mode needs ${minimum} or newer ` +
        '(it relies on per-message TTLs and consumer pause, new in 2.11; 2.9 silently ignores per-key TTLs). ' +
        'Upgrade every server of the cluster (docs/cluster.md), or point cluster.nats.servers at newer ones.',
      { httpStatus: 500 },
    );
    this.server = server;
    this.version = version;
  }
}

/**
 * Cluster mode could not reach JetStream (no connection, no stream leader, no answer) in time.
 * A publish that ran into it may still have been stored when a PubAck went unanswered: retrying
 * with the same Idempotency-Key within storage.dedupWindow returns the first answer.
 */
export class ClusterUnavailableError extends WaystationError {
  /** A write went unanswered: it may have been stored (retry with the same Idempotency-Key). */
  readonly mayHaveCommitted: boolean;
  constructor(what: string, options: { cause?: unknown; mayHaveCommitted?: boolean } = {}) {
    super(
      ErrorCodes.ClusterUnavailable,
      `${what}: NATS JetStream is not reachable or has no stream leader right now. ` +
        (options.mayHaveCommitted
          ? 'A write went unanswered and may still have been stored: retry with the same Idempotency-Key to get the first answer without storing twice. '
          : 'Nothing was stored. ') +
        'Check the NATS servers (docs/cluster.md); publishes are accepted again by themselves once JetStream answers.',
      { httpStatus: 503, cause: options.cause },
    );
    this.mayHaveCommitted = options.mayHaveCommitted ?? false;
  }
}

/** A publish does not fit in one JetStream message (the server's max_payload); nothing was stored. */
export class ClusterPayloadTooLargeError extends WaystationError {
  constructor(stream: string, bytes: number, maxPayload: number) {
    super(
      ErrorCodes.ClusterPayloadTooLarge,
      `The publish to stream "${stream}" needs at least ${bytes} bytes in one JetStream message, above the NATS server's max_payload of ${maxPayload} bytes; nothing was stored. ` +
        'In cluster mode a publish (a whole batch) is one JetStream message: send smaller payloads or smaller batches, or raise max_payload on every nats-server.',
      { httpStatus: 413 },
    );
  }
}

/** Another node wrote the same cluster state entry (route progress) since this node last read it. */
export class ClusterWriteConflictError extends WaystationError {
  constructor(what: string) {
    super(
      ErrorCodes.ClusterWriteConflict,
      `${what} was written by another node since this node read it; this node's write was refused so it overwrites nothing. ` +
        "Only the route's owner may write its state: check that every node runs the same configuration and that one node owns the route.",
      { httpStatus: 409 },
    );
  }
}

/** Cluster mode: a route action needs the route's owner, and no live node owns it right now. */
export class ClusterRouteUnownedError extends WaystationError {
  constructor(route: string, leaseTtlMs: number) {
    super(
      ErrorCodes.ClusterRouteUnowned,
      `No node owns route "${route}" right now (its owner stopped or lost NATS, and no other node has taken it over yet); nothing was changed. ` +
        `A live node takes a free route within about cluster.leaseTtl (${leaseTtlMs} ms): retry then, and check GET /v1/cluster.`,
      { httpStatus: 503 },
    );
  }
}

/** GET /v1/cluster (or `waystation cluster`) on a gateway that runs without a `cluster` section. */
export class NotClusteredError extends WaystationError {
  constructor() {
    super(
      ErrorCodes.ClusterNotEnabled,
      'This gateway runs on one node (no `cluster` section in its configuration); there is no cluster to show. See docs/cluster.md.',
      { httpStatus: 404 },
    );
  }
}

/**
 * Without tokens (loopback only), a browser page from another origin could still make a browser
 * on this host POST to the API: a mutation whose Origin names another host is refused.
 */
export class CrossOriginError extends WaystationError {
  constructor(origin: string, host: string | undefined) {
    super(
      ErrorCodes.HttpCrossOrigin,
      `A request changing state came from a web page at ${origin}, not from ${host ?? 'this gateway'}; it was refused and nothing changed. ` +
        "Without auth.tokens the API accepts changes only from clients that send no Origin (curl, the CLI, services) or from the gateway's own pages. Configure auth.tokens to use it from other origins.",
      { httpStatus: 403 },
    );
  }
}
