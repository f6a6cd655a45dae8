/**
 * Prometheus metrics (prom-client), gathered at scrape time from the routes' and streams'
 * snapshots, plus histograms fed by the engine (delivery latency) and the log (fsync latency).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Broker } from '../ingest/mqtt/broker.js';
import { RouteStates } from '../store/route-progress.js';
import type { Waystation } from '../waystation.js';

export interface Metrics {
  registry: Registry;
  /** Updates the snapshot-based metrics (streams, routes); call before reading the registry. */
  refresh(): Promise<void>;
  /** One delivery attempt (a batch) to a route's target took `seconds`. */
  observeDelivery(route: string, seconds: number): void;
  /** One log write + fdatasync took `seconds`. */
  observeFsync(seconds: number): void;
  /** Cluster mode: a route lease renewal was answered after `seconds`. */
  observeLeaseRenewal(seconds: number): void;
  /** An HTTP request ended before its body was complete (client-aborted, body-timeout, staging-full). */
  observeBodyRefusal(reason: 'client-aborted' | 'body-timeout' | 'staging-full'): void;
}

const OUTCOMES = ['forwarded', 'expired', 'pruned', 'purged', 'deadLettered'] as const;

export function createMetrics(
  ws: () => Waystation | undefined,
  mqtt: () => Broker | undefined = () => undefined,
): Metrics {
  const registry = new Registry();
  const registers = [registry];

  const up = new Gauge({ name: 'waystation_up', help: '1 while the gateway is open', registers });
  const peakRss = new Gauge({
    name: 'waystation_process_peak_rss_bytes',
    help: 'Largest resident set size of the process so far',
    registers,
  });
  const streamMessages = new Gauge({
    name: 'waystation_stream_messages',
    help: 'Messages held in the stream log',
    labelNames: ['stream'],
    registers,
  });
  const streamBytes = new Gauge({
    name: 'waystation_stream_bytes',
    help: 'Bytes of the stream log on disk',
    labelNames: ['stream'],
    registers,
  });
  const backlog = new Gauge({
    name: 'waystation_route_backlog_messages',
    help: 'Pending messages not at the target',
    labelNames: ['route'],
    registers,
  });
  const backlogBytes = new Gauge({
    name: 'waystation_route_backlog_bytes',
    help: 'Log bytes from the oldest pending message on',
    labelNames: ['route'],
    registers,
  });
  const inFlight = new Gauge({
    name: 'waystation_route_in_flight_messages',
    help: 'Messages at the target now',
    labelNames: ['route'],
    registers,
  });
  const state = new Gauge({
    name: 'waystation_route_state',
    help: '1 for the state the route is in, 0 for the others',
    labelNames: ['route', 'state'],
    registers,
  });
  const messages = new Counter({
    name: 'waystation_route_messages_total',
    help: 'Messages that reached a final state on the route, by outcome',
    labelNames: ['route', 'outcome'],
    registers,
  });
  const redelivered = new Counter({
    name: 'waystation_route_redeliveries_total',
    help: 'Deliveries of messages sent before',
    labelNames: ['route'],
    registers,
  });
  const failures = new Counter({
    name: 'waystation_route_failures_total',
    help: 'Delivery attempts answered nack or timed out',
    labelNames: ['route'],
    registers,
  });
  const overdue = new Counter({
    name: 'waystation_delivery_attempts_overdue_total',
    help: 'Delivery attempts the watchdog found in flight past their route timeout (should stay 0)',
    labelNames: ['route'],
    registers,
  });
  const throttled = new Counter({
    name: 'waystation_route_throttled_seconds_total',
    help: 'Time batches of the route waited for byte budgets (replay.bytesPerSecond, target or gateway maxBytesPerSecond)',
    labelNames: ['route'],
    registers,
  });
  const oldestAttempt = new Gauge({
    name: 'waystation_route_oldest_attempt_seconds',
    help: 'Age of the oldest delivery attempt at the target now (0 when none)',
    labelNames: ['route'],
    registers,
  });
  const delivery = new Histogram({
    name: 'waystation_delivery_seconds',
    help: 'Time of one delivery attempt (a batch) to a target',
    labelNames: ['route'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers,
  });
  const fsync = new Histogram({
    name: 'waystation_log_write_fsync_seconds',
    help: 'Time of one group-commit write (and fdatasync) of a log',
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 1],
    registers,
  });
  const mqttConnections = new Gauge({
    name: 'waystation_mqtt_connections',
    help: 'Connected MQTT clients',
    registers,
  });
  const mqttSessions = new Gauge({
    name: 'waystation_mqtt_sessions',
    help: 'MQTT sessions, connected or kept for their expiry interval',
    registers,
  });
  const mqttRetained = new Gauge({
    name: 'waystation_mqtt_retained_messages',
    help: 'Retained MQTT messages held (one per topic)',
    registers,
  });
  const mqttReceived = new Counter({
    name: 'waystation_mqtt_messages_received_total',
    help: 'PUBLISH packets accepted from MQTT clients (and wills)',
    registers,
  });
  const mqttSent = new Counter({
    name: 'waystation_mqtt_messages_sent_total',
    help: 'PUBLISH packets sent to MQTT subscribers',
    registers,
  });
  const mqttDropped = new Counter({
    name: 'waystation_mqtt_messages_dropped_total',
    help: 'MQTT messages not delivered, by reason: queue-full (offline queue), too-large (for the client), expired, not-stored (QoS 0 or will the storage refused), unsendable (a stored message whose headers make no valid PUBLISH)',
    labelNames: ['reason'],
    registers,
  });
  const sfBehind = new Gauge({
    name: 'waystation_mqtt_sf_subscriber_behind_messages',
    help: 'Stored messages a store-and-forward subscriber has not acknowledged',
    labelNames: ['topic', 'client_id'],
    registers,
  });
  const bodyRefusals = new Counter({
    name: 'waystation_http_bodies_refused_total',
    help: 'HTTP request bodies that ended unstored, by reason: client-aborted (the client hung up mid-body), body-timeout (silent for http.bodyTimeout), staging-full (http.maxStagingBytes)',
    labelNames: ['reason'],
    registers,
  });
  const leasesHeld = new Gauge({
    name: 'waystation_cluster_leases_held',
    help: 'Cluster mode: route leases this node holds (the routes it delivers)',
    registers,
  });
  const leaseEvents = new Counter({
    name: 'waystation_cluster_lease_changes_total',
    help: 'Cluster mode: route leases this node took (acquired, a takeover or a first start), lost (a renewal failed or lapsed) or handed over to a preferred node',
    labelNames: ['change'],
    registers,
  });
  const clusterNodes = new Gauge({
    name: 'waystation_cluster_nodes',
    help: 'Cluster mode: live nodes at the last heartbeat, this one included',
    registers,
  });
  const natsConnected = new Gauge({
    name: 'waystation_cluster_nats_connected',
    help: 'Cluster mode: 1 while the node is connected to a NATS server',
    registers,
  });
  const renewal = new Histogram({
    name: 'waystation_cluster_lease_renewal_seconds',
    help: 'Cluster mode: time for a route lease renewal (compare-and-set) to be answered',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  collectDefaultMetrics({ register: registry, prefix: 'waystation_' });

  return {
    registry,
    // prom-client collects metrics in parallel, so snapshots are gathered before, in one pass.
    async refresh() {
      const w = ws();
      up.set(w ? 1 : 0);
      peakRss.set(process.resourceUsage().maxRSS * 1024);
      if (!w) return;
      for (const s of w.streams()) {
        streamMessages.set({ stream: s.name }, s.messages);
        streamBytes.set({ stream: s.name }, s.bytes);
      }
      messages.reset();
      redelivered.reset();
      failures.reset();
      overdue.reset();
      throttled.reset();
      const cluster = w.clusterCounters();
      if (cluster) {
        leasesHeld.set(cluster.held);
        clusterNodes.set(cluster.nodes);
        natsConnected.set(cluster.connected ? 1 : 0);
        leaseEvents.reset();
        leaseEvents.inc({ change: 'acquired' }, cluster.acquired);
        leaseEvents.inc({ change: 'lost' }, cluster.lost);
        leaseEvents.inc({ change: 'handed-over' }, cluster.handedOver);
      }
      // Each route once across a cluster: the node that delivers it reports it.
      for (const r of await w.localRoutes()) {
        backlog.set({ route: r.name }, r.inQueue);
        backlogBytes.set({ route: r.name }, r.usedBytes);
        inFlight.set({ route: r.name }, r.inFlight);
        for (const s of RouteStates) state.set({ route: r.name, state: s }, r.state === s ? 1 : 0);
        for (const o of OUTCOMES) messages.inc({ route: r.name, outcome: o }, r[o]);
        redelivered.inc({ route: r.name }, r.redelivered);
        failures.inc({ route: r.name }, r.failures);
        overdue.inc({ route: r.name }, r.overdueAttempts);
        throttled.inc({ route: r.name }, r.throttledMs / 1000);
        oldestAttempt.set({ route: r.name }, r.oldestAttemptMs / 1000);
      }
      const broker = mqtt();
      if (!broker) return;
      const stats = broker.stats();
      mqttConnections.set(stats.connections);
      mqttSessions.set(stats.sessions);
      mqttRetained.set(stats.retained);
      mqttReceived.reset();
      mqttReceived.inc(stats.received);
      mqttSent.reset();
      mqttSent.inc(stats.sent);
      mqttDropped.reset();
      for (const [reason, n] of Object.entries(stats.dropped)) mqttDropped.inc({ reason }, n);
      sfBehind.reset();
      for (const t of broker.listTopics())
        for (const sub of t.subscribers)
          sfBehind.set({ topic: t.topic, client_id: sub.clientId }, sub.behind);
    },
    observeDelivery: (route, seconds) => delivery.observe({ route }, seconds),
    observeFsync: (seconds) => fsync.observe(seconds),
    observeLeaseRenewal: (seconds) => renewal.observe(seconds),
    observeBodyRefusal: (reason) => bodyRefusals.inc({ reason }),
  };
}
