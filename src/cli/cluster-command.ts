/** `waystation cluster [--json]`: the nodes of a cluster and which node delivers each route (GET /v1/cluster). */
import type { ApiClient } from './client.js';
import { printTable } from './table.js';

interface ClusterAnswer {
  nodeId: string;
  nodes: {
    nodeId: string;
    version: string;
    startedAt: string;
    heartbeatAt: string;
    routes: string[];
    self: boolean;
  }[];
  owners: Record<string, string | null>;
  nats: { connected: boolean; server?: string; serverVersion?: string };
  leaseTtlMs: number;
}

export async function showCluster(client: ApiClient, json: boolean): Promise<void> {
  const view = await client.get<ClusterAnswer>('/v1/cluster');
  if (json) {
    process.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
    return;
  }
  const nats = view.nats.connected
    ? `connected to ${view.nats.server ?? '?'} (nats-server ${view.nats.serverVersion ?? '?'})`
    : 'NOT connected to NATS';
  process.stdout.write(`node ${view.nodeId}, ${nats}, lease TTL ${view.leaseTtlMs} ms\n\n`);
  printTable(
    view.nodes.map((n) => ({
      node: n.self ? `${n.nodeId} (this)` : n.nodeId,
      version: n.version,
      heartbeat: n.heartbeatAt,
      started: n.startedAt,
      routes: n.routes.length,
    })),
    ['node', 'version', 'heartbeat', 'started', 'routes'],
  );
  process.stdout.write('\n');
  printTable(
    Object.entries(view.owners).map(([route, owner]) => ({
      route,
      owner: owner ?? '(none: changing hands)',
    })),
    ['route', 'owner'],
  );
}
