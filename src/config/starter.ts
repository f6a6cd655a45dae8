/**
 * The commented starter configuration `waystation init` writes (SPEC §5), so nobody starts from
 * a blank page. It must pass `waystation validate` as written (a test keeps it so), and every
 * key it shows is explained where it stands.
 */

const BASE = `# Waystation configuration (docs/gateway.md lists every key; schema/waystation.schema.json
# validates it in editors). Check it with:   waystation validate --config <this file>
# Run it with:                               waystation start --config <this file>
#
# Relative paths resolve against this file's directory. Durations: 200ms, 5s, 10m, 7d.
# Sizes: 64KiB, 1GiB. \${ENV_VAR} is replaced from the environment.

# Where messages, route progress and dead letters live. Size the disk for
# (the longest outage you ride out) x (your message rate) x (message size).
dataDir: ./data

storage:
  fsync: always            # answer a publish only after fdatasync (group commit); or interval, never
  maxBytes: 10GiB          # past this, publishes are refused with 507 (nothing stored is touched)
  minFreeBytes: 1GiB       # ...and while the disk has less free space than this

http:
  listen: 127.0.0.1:8080   # loopback: without auth.tokens the API must not listen elsewhere
  # tls: { cert: ./tls/cert.pem, key: ./tls/key.pem }

# Bearer tokens for the HTTP API; configure only hashes (waystation hash-token prints a token
# and its hash). A token's streams globs bound everything it can reach.
# auth:
#   tokens:
#     - name: producer
#       tokenHash: "hmac-sha256$..."
#       scopes: [publish]
#       streams: ["orders*"]
#     - name: ops
#       tokenHash: "hmac-sha256$..."
#       scopes: [admin]

# Streams: named, durable logs producers publish to (POST /v1/streams/<name>/messages).
streams:
  orders: {}

# Targets: where messages go. Types: http, mqtt, amqp, nats, postgres, redis, waystation, file,
# log, null, module (docs/targets.md).
targets:
  archive:
    type: file
    path: ./data/out/orders.ndjson
  # crm:
  #   type: http
  #   url: http://127.0.0.1:9090/orders
  #   timeout: 5s

# Routes: a stream (or several) to a target, with its own backlog, state and counters.
# When the target is down the route stores, probes every probeInterval, and drains in order
# once it is back.
routes:
  orders-to-archive:
    streams: [orders]
    target: archive
    ordering: fifo          # fifo | lifo | unordered | key
    probeInterval: 5s       # first probe while storing; backs off to probeIntervalMax
    probeIntervalMax: 1m
    replay: { ratePerSecond: 0 }               # 0: drain as fast as the target takes it
    retention: { maxAge: 7d, maxMessages: 1000000 }
    onFull: drop-oldest     # or reject-new: refuse publishes (507) when the route is full
`;

const MQTT = `
# The MQTT broker (docs/mqtt.md): MQTT 3.1.1 and 5.0 for devices. Publishes to a
# store-and-forward topic are stored (PUBACK once durable) and delivered to each subscriber
# from where it left off, throttled while it catches up.
mqtt:
  listen: 127.0.0.1:1883
  allowAnonymous: true      # loopback only; configure users (waystation hash-password) otherwise
  # users:
  #   - username: plant-1
  #     passwordHash: "scrypt$..."
  #     publish: ["plant/1/#"]
  #     subscribe: ["plant/1/#"]
  storeAndForwardTopics:
    - topic: sensors/#
      stream: sensors
      retention: { period: 7, unit: day }
      maxDeliveryRatePerSecond: 100
      newSubscriberDeliveryMode: NewMessages   # or StoredMessages: a new subscriber gets the last 1000
`;

export function starterConfig(options: { mqtt?: boolean } = {}): string {
  return options.mqtt ? BASE + MQTT : BASE;
}
