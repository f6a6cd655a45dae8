/**
 * The overview's alerts, derived from successive snapshots: a route storing longer than
 * `STORING_ALERT_MS`, used bytes above 80 % of a limit, dead letters growing (for 5 min after
 * they grew), and a route with a backlog that forwarded nothing for `STUCK_ALERT_MS`.
 */
import { bytes, clock } from './format.js';
import type { UiSnapshot } from './types.js';

export const STORING_ALERT_MS = 60_000;
export const STUCK_ALERT_MS = 30_000;
const DEAD_LETTER_ALERT_MS = 5 * 60_000;

export interface Alert {
  key: string;
  text: string;
}

interface RouteTrack {
  forwarded: number;
  changedAt: number;
}

export class AlertTracker {
  private readonly routes = new Map<string, RouteTrack>();
  private deadLetters: number | undefined;
  private deadLettersGrewAt: number | undefined;
  private deadLettersFrom = 0;

  /** Feeds one snapshot; answers the alerts as of it. */
  update(view: UiSnapshot): Alert[] {
    const now = view.at;
    const alerts: Alert[] = [];
    for (const r of view.routes) {
      const track = this.routes.get(r.name);
      if (!track || track.forwarded !== r.forwarded || r.inQueue === 0)
        this.routes.set(r.name, { forwarded: r.forwarded, changedAt: now });
      if (r.state === 'storing' && now - r.since >= STORING_ALERT_MS)
        alerts.push({
          key: `storing:${r.name}`,
          text: `Route ${r.name} has been storing since ${clock(r.since)}.`,
        });
      if (r.limitBytes !== undefined && r.limitBytes > 0 && r.usedBytes > 0.8 * r.limitBytes)
        alerts.push({
          key: `full:${r.name}`,
          text: `Route ${r.name} uses ${bytes(r.usedBytes)} of its ${bytes(r.limitBytes)} limit.`,
        });
      const since = this.routes.get(r.name)!.changedAt;
      if (r.inQueue > 0 && r.state !== 'held' && now - since >= STUCK_ALERT_MS)
        alerts.push({
          key: `stuck:${r.name}`,
          text: `Route ${r.name} has ${r.inQueue} messages waiting and has forwarded nothing since ${clock(since)}.`,
        });
    }
    const dl = view.totals.deadLetters;
    if (this.deadLetters !== undefined && dl > this.deadLetters) {
      if (this.deadLettersGrewAt === undefined || now - this.deadLettersGrewAt >= DEAD_LETTER_ALERT_MS)
        this.deadLettersFrom = this.deadLetters;
      this.deadLettersGrewAt = now;
    }
    this.deadLetters = dl;
    if (this.deadLettersGrewAt !== undefined && now - this.deadLettersGrewAt < DEAD_LETTER_ALERT_MS)
      alerts.push({
        key: 'dead-letters',
        text: `Dead letters grew from ${this.deadLettersFrom} to ${dl} (last at ${clock(this.deadLettersGrewAt)}).`,
      });
    return alerts;
  }
}
