/**
 * The operator dashboard at `/ui` (issue 11, SPEC §7), wired in one encapsulated plugin: its files
 * (ui-assets.ts), sign-in sessions (ui-session.ts) and the live view (ui-events.ts). Every
 * response under it carries the dashboard's Content-Security-Policy: the page runs only its own
 * script and style, talks only to this gateway, and cannot be framed.
 */
import type { FastifyInstance } from 'fastify';
import type { AccessCheck, TokenAuth } from '../ingest/http/auth.js';
import type { Waystation } from '../waystation.js';
import { UI_CSP, uiAssetRoutes } from './ui-assets.js';
import { type UiEventsOptions, uiEventsRoutes } from './ui-events.js';
import { type UiSessions, uiSessionRoutes } from './ui-session.js';

export { UI_CSP } from './ui-assets.js';

export interface UiRoutesOptions {
  ws: Waystation;
  auth: TokenAuth;
  sessions: UiSessions;
  access: AccessCheck;
  /** The gateway serves HTTPS (the session cookie gets Secure). */
  secure: boolean;
  /** Where the built dashboard is; default dist/ui of this package. */
  dir?: string;
  events?: UiEventsOptions;
}

export async function uiRoutes(app: FastifyInstance, opts: UiRoutesOptions): Promise<void> {
  app.addHook('onSend', async (_req, reply, payload) => {
    reply
      .header('content-security-policy', UI_CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('x-frame-options', 'DENY');
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });
  await app.register(uiAssetRoutes, { dir: opts.dir });
  await app.register(uiSessionRoutes, { auth: opts.auth, sessions: opts.sessions, secure: opts.secure });
  await app.register(uiEventsRoutes, { ws: opts.ws, access: opts.access, ...opts.events });
}
