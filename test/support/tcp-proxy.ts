/**
 * A TCP proxy between Waystation and a real server, so tests make outages without stopping the
 * shared server: `cut()` drops every connection and refuses new ones, `stall()` keeps
 * connections open but forwards nothing (a hung server), `restore()` heals both.
 */

import type { AddressInfo } from 'node:net';
import { connect, createServer, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<[Socket, Socket]>();
  private mode: 'open' | 'cut' | 'stall' = 'open';
  port = 0;

  constructor(
    private readonly upstreamHost: string,
    private readonly upstreamPort: number,
  ) {}

  async start(): Promise<this> {
    this.server = createServer((client) => {
      if (this.mode === 'cut') {
        client.destroy();
        return;
      }
      const upstream = connect(this.upstreamPort, this.upstreamHost);
      const pair: [Socket, Socket] = [client, upstream];
      this.pairs.add(pair);
      const forward = (from: Socket, to: Socket) =>
        from.on('data', (chunk) => {
          if (this.mode === 'open') to.write(chunk);
        });
      forward(client, upstream);
      forward(upstream, client);
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on('close', close).on('error', close);
      upstream.on('close', close).on('error', close);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Drops every connection; new ones are refused until restore(). */
  cut(): void {
    this.mode = 'cut';
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  /** Keeps connections but forwards nothing, like a server that stopped answering. */
  stall(): void {
    this.mode = 'stall';
  }

  restore(): void {
    if (this.mode === 'stall') {
      // Data swallowed during the stall is lost: drop those connections so clients reconnect.
      for (const [a, b] of this.pairs) {
        a.destroy();
        b.destroy();
      }
      this.pairs.clear();
    }
    this.mode = 'open';
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

/** Fails loudly (no skip) when a server the suite needs is not reachable. */
export async function requireServer(name: string, host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const socket = connect(port, host);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(
          `${name} is not reachable at ${host}:${port} (timed out). Start it: see README "Service tests".`,
        ),
      );
    }, 3000);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.end();
      resolve();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(
        new Error(
          `${name} is not reachable at ${host}:${port} (${err.message}). Start it: see README "Service tests".`,
        ),
      );
    });
  });
}
