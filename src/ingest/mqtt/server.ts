/**
 * The MQTT listeners (TCP, optional TLS, optional WebSocket at `mqtt.websocket.path`), each
 * socket handed to a Connection over the one Broker.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import type { Logger } from 'pino';
import type { Clock } from '../../delivery/clock.js';
import { ConfigError } from '../../errors.js';
import type { Waystation } from '../../waystation.js';
import { aclProblems, MqttAuth } from './auth.js';
import { Broker, type MqttConfig } from './broker.js';
import { Connection } from './connection.js';

export interface MqttAddresses {
  /** "mqtt://host:port" */
  tcp: string;
  tls?: string;
  websocket?: string;
}

export class MqttServer {
  private constructor(
    readonly broker: Broker,
    private readonly servers: Server[],
    private readonly sockets: Set<Duplex>,
    readonly addresses: MqttAddresses,
  ) {}

  static async start(ws: Waystation, config: MqttConfig, logger: Logger, clock?: Clock): Promise<MqttServer> {
    const log = logger.child({ component: 'mqtt' });
    // The config's validation checks these too (src/config/resolve.ts); a broker started without
    // it (a library caller's own MqttConfig) must not run with a filter that matches nothing.
    const problems = [
      ...(config.anonymous ? aclProblems(config.anonymous, 'mqtt.anonymous') : []),
      ...config.users.flatMap((u, i) => aclProblems(u, `mqtt.users[${i}]`)),
    ];
    if (problems.length > 0) throw new ConfigError(problems);
    const auth = new MqttAuth(config.users, config.allowAnonymous && (config.anonymous ?? true));
    const broker = await Broker.open(ws, config, log, clock);
    const servers: Server[] = [];
    const sockets = new Set<Duplex>();
    const accept = (socket: Duplex, remote: string, remoteAddress: string | undefined) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      new Connection(socket, { broker, auth, logger: log, remote, remoteAddress });
    };
    const onSocket = (socket: Socket) => {
      socket.setNoDelay(true);
      accept(socket, `${socket.remoteAddress}:${socket.remotePort}`, socket.remoteAddress);
    };
    try {
      const tcp = createServer(onSocket);
      const addresses: MqttAddresses = { tcp: `mqtt://${await listen(tcp, config.listen)}` };
      servers.push(tcp);
      if (config.tls) {
        const t = config.tls;
        const server = createTlsServer(
          {
            cert: readFileSync(t.cert),
            key: readFileSync(t.key),
            ca: t.ca ? readFileSync(t.ca) : undefined,
            requestCert: t.requestClientCert,
            rejectUnauthorized: t.requestClientCert,
          },
          onSocket,
        );
        addresses.tls = `mqtts://${await listen(server, t.listen)}`;
        servers.push(server);
      }
      if (config.websocket) {
        // Loaded only for a WebSocket listener: most brokers have none, and ws costs ~1.5 MB of heap.
        const { createWebSocketStream, WebSocketServer } = await import('ws');
        const http = createHttpServer((_req, res) => res.writeHead(426).end('MQTT over WebSocket only\n'));
        const wss = new WebSocketServer({
          server: http,
          path: config.websocket.path,
          handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false),
        });
        wss.on('connection', (socket, req) =>
          accept(createWebSocketStream(socket), `${req.socket.remoteAddress}`, req.socket.remoteAddress),
        );
        addresses.websocket = `ws://${await listen(http, config.websocket.listen)}${config.websocket.path}`;
        servers.push(http as unknown as Server);
      }
      const server = new MqttServer(broker, servers, sockets, addresses);
      log.info(addresses, `mqtt broker listening on ${addresses.tcp}`);
      return server;
    } catch (err) {
      for (const s of servers) s.close();
      await broker.close();
      throw err;
    }
  }

  /** Stops listening, disconnects every client (MQTT 5: reason 0x8B), saves the broker's state. */
  async close(): Promise<void> {
    const closed = this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    await this.broker.close();
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(closed);
  }
}

function listen(server: Server | ReturnType<typeof createHttpServer>, address: string): Promise<string> {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(at + 1));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const a = server.address();
      const actual = typeof a === 'object' && a ? a.port : port;
      resolve(`${host.includes(':') ? `[${host}]` : host}:${actual}`);
    });
  });
}
