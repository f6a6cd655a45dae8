/**
 * One client connection: bytes → mqtt-packet's parser → one handler per packet family → the
 * broker's session logic, and packets back through mqtt-packet's generator. Enforces the
 * connection-level rules: CONNECT first and once, keep-alive, maximum packet size, topic
 * aliases (both ways), the receive window (v5: DISCONNECT 0x93 past it), and v5 reason codes on
 * every refusal (MQTT 3.1.1 clients, which have no reason codes in PUBACK, are disconnected
 * instead so their message is not lost).
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import mqttPacket, {
  type IConnectPacket,
  type IDisconnectPacket,
  type IPublishPacket,
  type ISubscribePacket,
  type IUnsubscribePacket,
  type Packet,
  type QoS,
} from 'mqtt-packet';
import type { Logger } from 'pino';
import { AnswerQueue } from './answer-queue.js';
import { MqttAuth as Auth, type AuthResult, type MqttAuth, type MqttPrincipal } from './auth.js';
import { type Broker, type ClientConnection, isStorageRefusal, Reason } from './broker.js';
import { type BrokerMessage, idempotencyKeyOf, type PublishProperties } from './message.js';
import type { Link, Session, Subscription } from './session.js';
import { parseShared, topicFilterProblem, topicNameProblem } from './topic.js';
import { OutgoingTopicAliases } from './topic-aliases.js';
import { checkUtf8Strings } from './utf8.js';

const TOPIC_ALIAS_MAXIMUM = 10;
/** Aliases the broker assigns per connection at most, whatever larger maximum a client announces. */
const OUTGOING_ALIAS_LIMIT = 1024;
const NO_PROPERTIES: PublishProperties = Object.freeze({});
const MQTT_MAX_PACKET = 268_435_460;
const CONNECT_TIMEOUT_MS = 10_000;

export interface ConnectionOptions {
  broker: Broker;
  auth: MqttAuth;
  logger: Logger;
  /** Where the client came from, for logs. */
  remote: string;
  /** The client's remote address: repeated login failures from it are slowed down. Default `remote`. */
  remoteAddress?: string;
}

/** A connected client as the admin API shows it. */
export interface ConnectedClientInfo {
  clientId: string;
  /** null for an anonymous client. */
  username: string | null;
  /** 3 (MQTT 3.1), 4 (3.1.1) or 5. */
  protocolVersion: 3 | 4 | 5;
  remote: string;
  /** ms since the epoch when its CONNECT was accepted. */
  connectedAt: number;
  keepAliveSeconds: number;
}

export class Connection implements ClientConnection, Link {
  protocolVersion: 3 | 4 | 5 = 4;
  receiveMaximum = 0;
  maxPacketSize = MQTT_MAX_PACKET;
  private readonly parser = mqttPacket.parser();
  /** `authenticating`: CONNECT is being checked; packets after it wait (and reading pauses). */
  private state: 'awaiting-connect' | 'authenticating' | 'connected' | 'closed' = 'awaiting-connect';
  private readonly held: Packet[] = [];
  /** Set while parsing a packet with an ill-formed UTF-8 string, checked at its 'packet' event. */
  private illFormed: string | undefined;
  private session: Session | undefined;
  /** Until CONNECT is authenticated: allowed nothing. */
  private principal: MqttPrincipal = { kind: 'anonymous', acl: { publish: [], subscribe: [] } };
  private clientId = '';
  /** When CONNECT was accepted, ms since the epoch. */
  private connectedAt: number | undefined;
  private readonly aliases = new Map<number, string>();
  /** Aliases for what the broker sends, when the v5 client announced a Topic Alias Maximum. */
  private outgoingAliases: OutgoingTopicAliases | undefined;
  /** Incoming QoS 1/2 publishes not yet answered; reading pauses at the receive maximum. */
  private unanswered = 0;
  /**
   * The client's send quota in use (MQTT 5.0 §4.9): QoS 1 publishes not yet PUBACKed and QoS 2
   * ones (`openQos2`, by packet id) until PUBREL or a failure PUBREC. Beyond the announced
   * Receive Maximum: DISCONNECT 0x93 [MQTT-3.3.4-7].
   */
  private quotaUsed = 0;
  private readonly openQos2 = new Set<number>();
  private readonly answers = new AnswerQueue();
  /** Outcomes of QoS 2 publishes still being stored, by packet id (for a resend meanwhile). */
  private readonly storingQos2 = new Map<number, Promise<number>>();
  private keepAliveMs = 0;
  private lastPacketAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private willOnClose = true;
  private corked = false;
  private readonly log: Logger;

  constructor(
    private readonly socket: Duplex,
    private readonly options: ConnectionOptions,
  ) {
    this.log = options.logger;
    checkUtf8Strings(this.parser, (why) => {
      this.illFormed ??= why;
    });
    this.parser.on('packet', (p: Packet) => this.onParsed(p));
    this.parser.on('error', (err: Error) =>
      this.violation(Reason.malformed, `malformed packet: ${err.message}`),
    );
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.session?.drain());
    socket.on('error', () => {});
    socket.on('close', () => this.onClose());
    this.timer = setTimeout(() => {
      if (this.state === 'awaiting-connect') this.destroy();
    }, CONNECT_TIMEOUT_MS);
  }

  get link(): Link {
    return this;
  }

  /** Who is connected, for the admin API's view of the clients (undefined before CONNECT is accepted). */
  describe(): ConnectedClientInfo | undefined {
    if (this.connectedAt === undefined) return undefined;
    return {
      clientId: this.clientId,
      username: this.principal.kind === 'user' ? this.principal.user.username : null,
      protocolVersion: this.protocolVersion,
      remote: this.options.remote,
      connectedAt: this.connectedAt,
      // keepAliveMs is the deadline, 1.5 × the interval [MQTT-3.1.2-22].
      keepAliveSeconds: Math.round(this.keepAliveMs / 1500),
    };
  }

  get congested(): boolean {
    return (this.socket as { writableNeedDrain?: boolean }).writableNeedDrain === true;
  }

  sendPublish(packet: IPublishPacket): boolean {
    const aliases = this.outgoingAliases;
    const out = aliases ? aliases.apply(packet) : packet;
    let bytes: Buffer;
    try {
      bytes = this.encode(out);
    } catch (err) {
      aliases?.unsent(out);
      throw err;
    }
    if (bytes.byteLength > this.maxPacketSize) {
      aliases?.unsent(out);
      return false;
    }
    this.cork();
    this.socket.write(bytes);
    return true;
  }

  sendPubrel(packetId: number): void {
    this.write({ cmd: 'pubrel', messageId: packetId });
  }

  close(reasonCode: number): void {
    if (this.state === 'closed') return;
    if (this.protocolVersion === 5 && this.state === 'connected')
      this.write({ cmd: 'disconnect', reasonCode });
    // No will at shutdown; on a takeover the broker settles it (Broker.connect) and ignores this.
    this.willOnClose = reasonCode !== Reason.sessionTakenOver && reasonCode !== Reason.serverShuttingDown;
    this.destroy();
  }

  // --- input ------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.lastPacketAt = Date.now();
    this.parser.parse(chunk);
    // The parser buffers a whole packet: refuse an oversized one as soon as its length is known.
    const pending = (this.parser as unknown as { packet?: { length?: number } }).packet?.length ?? -1;
    if (this.isOpen() && pending > this.options.broker.config.maxPacketSize) {
      this.violation(Reason.packetTooLarge, `packet of ${pending} bytes exceeds mqtt.maxPacketSize`);
    }
  }

  private onParsed(p: Packet): void {
    if (this.state === 'closed') return;
    const illFormed = this.illFormed;
    this.illFormed = undefined;
    if (illFormed !== undefined) {
      // Nothing of the packet is acted on: a PUBLISH is neither stored nor acknowledged.
      this.malformedString(p, illFormed);
      return;
    }
    if (this.state === 'authenticating') this.held.push(p);
    else this.onPacket(p);
  }

  /** [MQTT-1.5.4-1/2]: close the connection (v5: CONNACK or DISCONNECT 0x81 first). */
  private malformedString(p: Packet, why: string): void {
    if (p.cmd === 'connect' && this.state === 'awaiting-connect') {
      this.protocolVersion = (p.protocolVersion ?? 4) as 3 | 4 | 5;
      this.refuseConnect(p, Reason.malformed, undefined, `malformed CONNECT: ${why}`);
      return;
    }
    this.violation(Reason.malformed, `malformed ${p.cmd}: ${why}`);
  }

  private onPacket(p: Packet): void {
    if (this.state === 'closed') return;
    if ((p.length ?? 0) > this.options.broker.config.maxPacketSize) {
      this.violation(Reason.packetTooLarge, `packet of ${p.length} bytes exceeds mqtt.maxPacketSize`);
      return;
    }
    if (this.state === 'awaiting-connect') {
      if (p.cmd !== 'connect') {
        this.violation(Reason.protocolError, 'first packet must be CONNECT [MQTT-3.1.0-1]');
        return;
      }
      this.onConnect(p);
      return;
    }
    switch (p.cmd) {
      case 'publish':
        this.onPublish(p);
        return;
      case 'puback':
        this.session!.acknowledged(p.messageId!, 'puback');
        return;
      case 'pubrec':
        if ((p.reasonCode ?? 0) >= 0x80) {
          this.session!.refused(p.messageId!);
          return;
        }
        if (this.session!.received(p.messageId!)) this.write({ cmd: 'pubrel', messageId: p.messageId! });
        else this.write({ cmd: 'pubrel', messageId: p.messageId!, reasonCode: Reason.packetIdNotFound });
        return;
      case 'pubrel': {
        if (this.openQos2.delete(p.messageId!)) this.quotaUsed--;
        const known = this.session!.incomingQos2.delete(p.messageId!);
        const reasonCode = known || this.protocolVersion !== 5 ? Reason.success : Reason.packetIdNotFound;
        // After the PUBRECs before it, so answers stay in order.
        this.answers.now(() => this.write({ cmd: 'pubcomp', messageId: p.messageId!, reasonCode }));
        return;
      }
      case 'pubcomp':
        this.session!.acknowledged(p.messageId!, 'pubcomp');
        return;
      case 'subscribe':
        this.onSubscribe(p);
        return;
      case 'unsubscribe':
        this.onUnsubscribe(p);
        return;
      case 'pingreq':
        this.write({ cmd: 'pingresp' });
        return;
      case 'disconnect':
        this.onDisconnect(p);
        return;
      case 'connect':
        this.violation(Reason.protocolError, 'second CONNECT [MQTT-3.1.0-2]');
        return;
      default:
        this.violation(Reason.protocolError, `unexpected ${p.cmd} packet from a client`);
        return;
    }
  }

  /** Refuses a CONNECT with a CONNACK (3.1.1: `v3code`; none: just close) and closes. */
  private refuseConnect(p: IConnectPacket, v5code: number, v3code: number | undefined, why: string): void {
    this.log.info({ clientId: p.clientId, remote: this.options.remote }, `mqtt: connection refused: ${why}`);
    if (this.protocolVersion === 5) this.write({ cmd: 'connack', sessionPresent: false, reasonCode: v5code });
    else if (v3code !== undefined) this.write({ cmd: 'connack', sessionPresent: false, returnCode: v3code });
    this.destroy();
  }

  private onConnect(p: IConnectPacket): void {
    this.protocolVersion = (p.protocolVersion ?? 4) as 3 | 4 | 5;
    const v5 = this.protocolVersion === 5;
    let clientId = p.clientId;
    let assigned: string | undefined;
    if (clientId.length === 0) {
      if (!v5 && !p.clean) {
        this.refuseConnect(
          p,
          Reason.clientIdNotValid,
          2,
          'empty client ID needs a clean session [MQTT-3.1.3-8]',
        );
        return;
      }
      clientId = `ws-${randomBytes(8).toString('hex')}`;
      assigned = v5 ? clientId : undefined;
    }
    if (v5 && p.properties?.authenticationMethod !== undefined) {
      this.refuseConnect(p, Reason.badAuthenticationMethod, 4, 'enhanced authentication is not supported');
      return;
    }
    // Password checks run off the event loop; packets sent after CONNECT wait for the outcome.
    this.state = 'authenticating';
    this.socket.pause();
    this.options.auth
      .authenticate(p.username, p.password, this.options.remoteAddress ?? this.options.remote)
      .then(
        (who) => this.authenticated(p, who, clientId, assigned),
        (err: unknown) => {
          this.log.error({ err, clientId: p.clientId }, 'mqtt: checking credentials failed');
          if (this.state === 'authenticating')
            this.refuseConnect(p, Reason.unspecified, 3, 'credentials check failed');
        },
      );
  }

  private authenticated(
    p: IConnectPacket,
    who: AuthResult,
    clientId: string,
    assigned: string | undefined,
  ): void {
    if (this.state !== 'authenticating') return; // the client went away meanwhile
    const v5 = this.protocolVersion === 5;
    const { broker } = this.options;
    const config = broker.config;
    const refuse = (v5code: number, v3code: number, why: string) =>
      this.refuseConnect(p, v5code, v3code, why);
    if (who === 'busy') {
      refuse(Reason.serverBusy, 3, 'too many password checks at once (server busy)');
      return;
    }
    if (who === 'bad-credentials') {
      refuse(Reason.badUserNameOrPassword, 4, 'bad username or password');
      return;
    }
    if (who === 'not-authorized') {
      refuse(Reason.notAuthorized, 5, 'anonymous clients are not allowed');
      return;
    }
    this.principal = who;
    let will: Parameters<Broker['connect']>[2]['will'];
    if (p.will) {
      const problem = topicNameProblem(p.will.topic);
      if (problem) {
        refuse(Reason.topicNameInvalid, 2, `will topic: ${problem}`);
        return;
      }
      if (!Auth.mayPublish(who, p.will.topic)) {
        refuse(Reason.notAuthorized, 5, `may not publish the will topic ${p.will.topic}`);
        return;
      }
      const responseTopic = p.will.properties?.responseTopic;
      const responseProblem = responseTopic === undefined ? undefined : topicNameProblem(responseTopic);
      if (responseProblem) {
        refuse(Reason.protocolError, 2, `will response topic: ${responseProblem} [MQTT-3.3.2-14]`);
        return;
      }
      const { willDelayInterval, messageExpiryInterval, ...properties } = p.will.properties ?? {};
      will = {
        message: {
          topic: p.will.topic,
          payload: Buffer.from(p.will.payload),
          qos: (p.will.qos ?? 0) as QoS,
          retain: p.will.retain ?? false,
          properties: properties as PublishProperties,
          expiresAt: undefined,
        },
        expiryMs: messageExpiryInterval === undefined ? undefined : messageExpiryInterval * 1000,
        delayMs: (willDelayInterval ?? 0) * 1000,
        publisher: clientId,
      };
    }
    let keepAlive = p.keepalive ?? 0;
    let serverKeepAlive: number | undefined;
    const maxKeepAlive = Math.floor(config.maxKeepAlive / 1000);
    // Only an MQTT 5 client can be told (Server Keep Alive, which it must then use [MQTT-3.2.2-21]);
    // a 3.1.1 client keeps its own: imposing a shorter one would cut off a client that follows its own.
    if (v5 && maxKeepAlive > 0 && (keepAlive === 0 || keepAlive > maxKeepAlive)) {
      keepAlive = maxKeepAlive;
      serverKeepAlive = keepAlive;
    }
    const requested = v5
      ? (p.properties?.sessionExpiryInterval ?? 0) * 1000
      : p.clean
        ? 0
        : Number.POSITIVE_INFINITY;
    const expiryMs = Math.min(requested, config.maxSessionExpiry);
    this.receiveMaximum = (v5 ? p.properties?.receiveMaximum : undefined) ?? config.receiveMaximum;
    this.maxPacketSize = (v5 ? p.properties?.maximumPacketSize : undefined) ?? MQTT_MAX_PACKET;
    const aliasMaximum = Math.min(v5 ? (p.properties?.topicAliasMaximum ?? 0) : 0, OUTGOING_ALIAS_LIMIT);
    if (aliasMaximum > 0) this.outgoingAliases = new OutgoingTopicAliases(aliasMaximum);
    if (broker.isClosed) {
      // Authenticated while the broker shut down: no session may start after its close.
      this.refuseConnect(p, Reason.serverUnavailable, 3, 'the broker is shutting down');
      return;
    }
    this.clientId = clientId;
    this.connectedAt = Date.now();
    this.state = 'connected';
    const { session, sessionPresent } = broker.connect(clientId, this, {
      cleanStart: p.clean ?? true,
      expiryMs,
      will,
    });
    this.session = session;
    session.deniedTopics = Auth.deniedTopics(who);
    if (v5) {
      this.write({
        cmd: 'connack',
        sessionPresent,
        reasonCode: Reason.success,
        properties: {
          receiveMaximum: config.receiveMaximum,
          maximumPacketSize: config.maxPacketSize,
          topicAliasMaximum: TOPIC_ALIAS_MAXIMUM,
          ...(assigned ? { assignedClientIdentifier: assigned } : {}),
          ...(serverKeepAlive !== undefined ? { serverKeepAlive } : {}),
          ...(requested !== expiryMs ? { sessionExpiryInterval: Math.floor(expiryMs / 1000) } : {}),
        },
      });
    } else {
      this.write({ cmd: 'connack', sessionPresent, returnCode: 0 });
    }
    broker.resume(session, this);
    this.startKeepAlive(keepAlive);
    for (const held of this.held.splice(0)) this.onPacket(held);
    if (this.state === 'connected' && this.unanswered < config.receiveMaximum) this.socket.resume();
  }

  private onPublish(p: IPublishPacket): void {
    const v5 = this.protocolVersion === 5;
    let topic = p.topic;
    const alias = p.properties?.topicAlias;
    if (alias !== undefined) {
      if (alias === 0 || alias > TOPIC_ALIAS_MAXIMUM) {
        this.violation(Reason.topicAliasInvalid, `topic alias ${alias} out of range`);
        return;
      }
      if (topic.length > 0) this.aliases.set(alias, topic);
      else {
        const known = this.aliases.get(alias);
        if (known === undefined) {
          this.violation(Reason.protocolError, `unknown topic alias ${alias}`);
          return;
        }
        topic = known;
      }
    }
    const problem = topicNameProblem(topic);
    if (problem) {
      this.violation(Reason.topicNameInvalid, problem);
      return;
    }
    const qos = p.qos;
    const packetId = p.messageId!;
    const limit = this.options.broker.config.receiveMaximum;
    if (qos === 1 || (qos === 2 && !this.openQos2.has(packetId))) {
      if (qos === 2) this.openQos2.add(packetId);
      if (++this.quotaUsed > limit && v5) {
        this.violation(
          Reason.receiveMaximumExceeded,
          `more than ${limit} QoS 1/2 publishes unacknowledged (Receive Maximum) [MQTT-3.3.4-7]`,
        );
        return;
      }
    }
    const answer =
      qos === 1
        ? (reasonCode: number) => {
            this.quotaUsed--;
            this.writePuback(packetId, reasonCode);
          }
        : (reasonCode: number) => {
            // A failure PUBREC ends the flow; else it stays open until PUBREL.
            if (reasonCode >= 0x80 && this.openQos2.delete(packetId)) this.quotaUsed--;
            this.write({ cmd: 'pubrec', messageId: packetId, reasonCode });
          };
    if (qos === 2 && this.session!.incomingQos2.has(packetId)) {
      // A resent QoS 2 publish: not stored twice [MQTT-4.3.3-10]; answered like the first one,
      // once its outcome is known (never "success" while it may still fail).
      const first = this.storingQos2.get(packetId);
      if (first) void first.then(this.answers.later(answer));
      else this.answers.now(answer, Reason.success);
      return;
    }
    if (!Auth.mayPublish(this.principal, topic)) {
      if (!v5) {
        this.violation(Reason.notAuthorized, `not authorized to publish to ${topic}`);
        return;
      }
      if (qos > 0) this.answers.now(answer, Reason.notAuthorized);
      return;
    }
    let properties: PublishProperties = NO_PROPERTIES;
    let expiresAt: number | undefined;
    if (p.properties) {
      const { topicAlias, subscriptionIdentifier, messageExpiryInterval, ...rest } = p.properties;
      properties = rest;
      if (messageExpiryInterval !== undefined) expiresAt = Date.now() + messageExpiryInterval * 1000;
    }
    const responseProblem =
      properties.responseTopic === undefined ? undefined : topicNameProblem(properties.responseTopic);
    if (responseProblem) {
      this.violation(Reason.protocolError, `response topic: ${responseProblem} [MQTT-3.3.2-14]`);
      return;
    }
    const payload = typeof p.payload === 'string' ? Buffer.from(p.payload) : p.payload;
    if (properties.payloadFormatIndicator && !isUtf8(payload)) {
      if (qos > 0) this.answers.now(answer, Reason.payloadFormatInvalid);
      return;
    }
    const message: BrokerMessage = { topic, payload, qos, retain: p.retain, properties, expiresAt };
    if (qos === 0) {
      this.options.broker.publishUnanswered(message, this.clientId);
      return;
    }
    const outcome = this.options.broker.publish(message, this.clientId, idempotencyKeyOf(properties)).then(
      () => Reason.success,
      (err: unknown) => {
        if (qos === 2) this.session?.incomingQos2.delete(packetId);
        if (isStorageRefusal(err)) {
          this.log.warn(
            { clientId: this.clientId, topic, err: (err as Error).message },
            'mqtt: publish refused',
          );
          return Reason.quotaExceeded;
        }
        this.log.error({ err, clientId: this.clientId, topic }, 'mqtt: storing a publish failed');
        return Reason.unspecified;
      },
    );
    if (qos === 2) {
      this.session!.incomingQos2.add(packetId);
      this.storingQos2.set(packetId, outcome);
      void outcome.then(() => this.storingQos2.delete(packetId));
    }
    if (++this.unanswered >= limit) this.socket.pause();
    const done = this.answers.later((code) => {
      if (--this.unanswered < limit) this.socket.resume();
      if (this.state === 'closed') return;
      // 3.1.1 has no failure PUBACK: disconnect so the client keeps the message and retries.
      if (code !== Reason.success && !v5) {
        this.violation(code, `publish to ${topic} not stored`);
        return;
      }
      answer(code);
    });
    void outcome.then(done);
  }

  private onSubscribe(p: ISubscribePacket): void {
    const v5 = this.protocolVersion === 5;
    const accepted: Subscription[] = [];
    const granted: number[] = [];
    const subscriptionId = p.properties?.subscriptionIdentifier;
    for (const s of p.subscriptions) {
      let shared: ReturnType<typeof parseShared>;
      try {
        shared = parseShared(s.topic);
      } catch {
        granted.push(v5 ? Reason.topicFilterInvalid : 0x80);
        continue;
      }
      const match = shared?.filter ?? s.topic;
      if (!shared && topicFilterProblem(s.topic)) {
        granted.push(v5 ? Reason.topicFilterInvalid : 0x80);
        continue;
      }
      if (shared && s.nl) {
        this.violation(Reason.protocolError, 'No Local on a shared subscription [MQTT-3.8.3-4]');
        return;
      }
      if (!Auth.maySubscribe(this.principal, match)) {
        const denied =
          this.options.broker.config.deniedSubscriptionReason === 'unspecified'
            ? Reason.unspecified
            : Reason.notAuthorized;
        granted.push(v5 ? denied : 0x80);
        continue;
      }
      const qos = Math.min(s.qos, 2) as QoS;
      granted.push(qos);
      accepted.push({
        filter: s.topic,
        match,
        shareGroup: shared?.group,
        qos,
        noLocal: s.nl ?? false,
        retainAsPublished: s.rap ?? false,
        retainHandling: s.rh ?? 0,
        subscriptionId,
        storeAndForward: [],
      });
    }
    this.answers.now(() => {
      if (this.state === 'closed') return;
      this.write({ cmd: 'suback', messageId: p.messageId!, granted });
      for (const sub of accepted) this.options.broker.subscribe(this.session!, sub);
    });
  }

  private onUnsubscribe(p: IUnsubscribePacket): void {
    const codes = p.unsubscriptions.map((f) =>
      this.options.broker.unsubscribe(this.session!, f) ? Reason.success : Reason.noSubscriptionExisted,
    );
    this.answers.now(() => {
      if (this.protocolVersion === 5)
        this.write({ cmd: 'unsuback', messageId: p.messageId!, granted: codes });
      else this.write({ cmd: 'unsuback', messageId: p.messageId!, granted: [] });
    });
  }

  private onDisconnect(p: IDisconnectPacket): void {
    const expiry = p.properties?.sessionExpiryInterval;
    if (expiry !== undefined && this.session) {
      if (this.session.expiryMs === 0 && expiry > 0) {
        this.violation(
          Reason.protocolError,
          'session expiry set on DISCONNECT after 0 on CONNECT [MQTT-3.14.2-2]',
        );
        return;
      }
      this.session.expiryMs = Math.min(expiry * 1000, this.options.broker.config.maxSessionExpiry);
    }
    // 0x04 "disconnect with will message"; any other clean DISCONNECT discards the will.
    this.willOnClose = p.reasonCode === 0x04;
    this.socket.end();
    this.finish();
  }

  // --- output and lifecycle ---------------------------------------------------------------

  private isOpen(): boolean {
    return this.state !== 'closed';
  }

  private encode(packet: Packet): Buffer {
    return mqttPacket.generate(packet, { protocolVersion: this.protocolVersion });
  }

  private write(packet: Packet): void {
    if (!this.socket.writable) return;
    this.cork();
    this.socket.write(this.encode(packet));
  }

  /**
   * The answer to nearly every QoS 1 publish, written as its four bytes: a PUBACK with reason
   * Success and no properties has Remaining Length 2 in every version (MQTT 5.0 §3.4.2.1 lets
   * the reason code and properties go), and mqtt-packet's generator allocated about 1 KB for it.
   */
  private writePuback(messageId: number, reasonCode: number): void {
    if (reasonCode !== Reason.success) {
      this.write({ cmd: 'puback', messageId, reasonCode });
      return;
    }
    if (!this.socket.writable) return;
    this.cork();
    const bytes = Buffer.allocUnsafe(4);
    bytes[0] = 0x40;
    bytes[1] = 2;
    bytes.writeUInt16BE(messageId, 2);
    this.socket.write(bytes);
  }

  /** Acks answered together (one commit of the log) leave in one segment, not one syscall each. */
  private cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(() => {
      this.corked = false;
      this.socket.uncork();
    });
  }

  private startKeepAlive(seconds: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (seconds <= 0) return;
    // [MQTT-3.1.2-22] one and a half keep-alive periods without a packet ends the connection.
    this.keepAliveMs = seconds * 1500;
    const check = () => {
      const idle = Date.now() - this.lastPacketAt;
      if (idle >= this.keepAliveMs) {
        this.close(Reason.keepAliveTimeout);
        return;
      }
      this.timer = setTimeout(check, this.keepAliveMs - idle);
    };
    this.timer = setTimeout(check, this.keepAliveMs);
  }

  /** A protocol violation: v5 DISCONNECT with the reason, then close; the will is published. */
  private violation(reasonCode: number, why: string): void {
    if (this.state === 'closed') return;
    this.log.info(
      { clientId: this.clientId || undefined, remote: this.options.remote, reasonCode },
      `mqtt: closing connection: ${why}`,
    );
    if (this.protocolVersion === 5 && this.state === 'connected')
      this.write({ cmd: 'disconnect', reasonCode });
    this.willOnClose = true;
    this.destroy();
  }

  /** Ends the connection; a peer that does not close its side within a second is cut off. */
  private destroy(): void {
    this.socket.end();
    this.finish();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private onClose(): void {
    this.finish();
  }

  private finish(): void {
    if (this.state === 'closed') return;
    const wasConnected = this.state === 'connected';
    this.state = 'closed';
    if (this.timer) clearTimeout(this.timer);
    this.parser.removeAllListeners('packet');
    if (wasConnected && this.session) this.options.broker.disconnected(this.session, this, this.willOnClose);
  }
}

function isUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}
