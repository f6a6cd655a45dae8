/**
 * The route detail view (#/routes/<name>) and the routes table's activity columns in a real
 * headless Chromium (as test/ui/dashboard.test.ts: Debian's /usr/bin/chromium driven by
 * playwright-core; skipped where there is none). History charts, time to drain and until full,
 * Store / Forward / Purge (oldest N) / Reset counters from the detail, the timeline naming the
 * token, a gap and the restart in the timeline after the gateway restarts, a read-only token,
 * and a token whose globs do not reach a route. Screenshots go to .screenshots/ (not committed).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { Gateway } from '../../src/gateway.js';
import { hashToken } from '../../src/ingest/http/auth.js';
import {
  freePort,
  HAVE_CHROMIUM,
  launchChromium,
  openPage,
  SHOTS,
  type Watched,
} from '../support/browser.js';
import { ScriptedTarget } from '../support/scripted-target.js';

const ADMIN = 'detail-admin-token-0123456789abcdef';
const READER = 'detail-read-token-0123456789abcdef';
const PARTNER = 'detail-partner-token-0123456789abcdef';
const ROUTE = 'orders-to-crm';
const SECRET = 'payroll-to-bank';

let browser: Browser | undefined;

/** A page whose console errors, CSP violations and every request's host are recorded. */
const open = (colorScheme: 'light' | 'dark' = 'light', width = 1280): Promise<Watched> =>
  openPage(browser!, colorScheme, width);

describe.skipIf(!HAVE_CHROMIUM)('the route detail in Chromium', () => {
  const target = new ScriptedTarget();
  let gw: Gateway;
  let dir: string;
  let port: number;

  const start = () =>
    Gateway.start({
      configPath: join(dir, 'waystation.yaml'),
      listen: `127.0.0.1:${port}`,
      logger: pino({ level: 'silent' }),
      waystation: { targets: { crm: target } },
    });

  beforeAll(async () => {
    browser = await launchChromium();
    dir = await mkdtemp(join(tmpdir(), 'ws-ui-detail-'));
    port = await freePort();
    await writeFile(
      join(dir, 'waystation.yaml'),
      stringify({
        dataDir: './data',
        auth: {
          tokens: [
            { name: 'ops', tokenHash: hashToken(ADMIN), scopes: ['admin'] },
            { name: 'viewer', tokenHash: hashToken(READER), scopes: ['read'] },
            { name: 'partner', tokenHash: hashToken(PARTNER), scopes: ['admin'], streams: ['orders*'] },
          ],
        },
        targets: { crm: { type: 'null' }, bank: { type: 'null' } },
        routes: {
          [ROUTE]: {
            streams: ['orders'],
            target: 'crm',
            probeInterval: '100ms',
            retention: { maxBytes: '64KiB' },
          },
          [SECRET]: { streams: ['payroll'], target: 'bank' },
        },
      }),
    );
    gw = await start();
  });

  afterAll(async () => {
    await browser?.close();
    await gw?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function signIn(w: Watched, token: string, hash = ''): Promise<void> {
    await w.page.goto(`${gw.url}/ui${hash}`);
    await w.page.getByLabel('Token').fill(token);
    await w.page.getByRole('button', { name: 'Sign in' }).click();
    await w.page.locator('[role="status"][data-status="live"]').waitFor();
  }

  const fact = (page: Page, name: string) => page.locator(`dd[data-fact="${name}"]`);
  const timeline = (page: Page) => page.locator('ol.timeline');

  it('shows history, estimates and the timeline, and acts from the detail', async () => {
    const w = await open();
    const { page } = w;
    await signIn(w, ADMIN, '#/routes');
    const row = page.getByRole('row').filter({ has: page.getByText(ROUTE, { exact: true }) });
    await row.locator('svg.spark').waitFor();
    await row.getByRole('link', { name: ROUTE, exact: true }).click();
    await page.getByRole('heading', { name: `Route ${ROUTE}` }).waitFor();
    expect(new URL(page.url()).hash).toBe(`#/routes/${ROUTE}`);
    for (const title of ['In queue', 'Used bytes', 'Messages per second'])
      await page.locator('figure.chart figcaption', { hasText: title }).waitFor();
    await expect.poll(() => fact(page, 'Time to drain').textContent()).toBe('empty');

    // Store from the detail: held by the operator, and the timeline names the token.
    await page.getByRole('button', { name: 'Store', exact: true }).click();
    await page.locator('.summary').getByText('held', { exact: true }).waitFor({ timeout: 3000 });
    expect((await gw.ws.route(ROUTE).snapshot()).state).toBe('held');
    await timeline(page).getByText('Store by ops').waitFor();
    await timeline(page).getByText('forwarding → held (operator)').waitFor();

    // A backlog that grows: oldest pending, time until full against the 64 KiB limit.
    for (let s = 0; s < 8; s++) {
      for (let i = 0; i < 5; i++) await gw.ws.publish('orders', `order ${s}-${i} ${'x'.repeat(200)}`);
      await new Promise((r) => setTimeout(r, 700));
    }
    await expect.poll(() => fact(page, 'In queue').textContent(), { timeout: 3000 }).toBe('40');
    await expect.poll(() => fact(page, 'Oldest pending').textContent()).toMatch(/^\d+ s old$/);
    await expect
      .poll(() => fact(page, 'Time until full').textContent(), { timeout: 5000 })
      .toMatch(/\d+ (s|min)/);
    expect(await fact(page, 'Time to drain').textContent()).toBe('not draining');
    await page.screenshot({ path: join(SHOTS, 'route-detail-held.png'), fullPage: true });

    // Purge only the oldest 10: the dialog asks for the name.
    await page.getByRole('button', { name: 'Purge', exact: true }).click();
    const dialog = page.getByRole('dialog');
    const confirm = dialog.getByRole('button', { name: 'Purge', exact: true });
    await dialog.getByLabel('Only the oldest N').fill('10');
    expect(await confirm.isDisabled()).toBe(true);
    await dialog.getByLabel('Route name').fill(ROUTE);
    await confirm.click();
    await page.getByText(`Purged 10 messages from route ${ROUTE}.`).waitFor();
    expect((await gw.ws.route(ROUTE).snapshot()).inQueue).toBe(30);
    await timeline(page).getByText('Purge by ops: 10 (oldest 10)').waitFor();

    // Forward drains it; the last delivery shows.
    await page.getByRole('button', { name: 'Forward', exact: true }).click();
    await expect.poll(async () => (await gw.ws.route(ROUTE).snapshot()).inQueue, { timeout: 5000 }).toBe(0);
    await timeline(page).getByText('Forward by ops').waitFor();
    await expect.poll(() => fact(page, 'Last delivery').textContent(), { timeout: 5000 }).toMatch(/ago$/);
    await page.getByRole('button', { name: 'Reset counters', exact: true }).click();
    await timeline(page).getByText('Reset counters by ops').waitFor();
    await expect.poll(() => fact(page, 'Forwarded').textContent()).toBe('0');
    // The forwarded rate shows in the 5 min chart's line.
    const rates = page.locator('figure.chart', { hasText: 'Messages per second' });
    expect(await rates.locator('path.line-forwarded').getAttribute('d')).toMatch(/^M/);
    await page.screenshot({ path: join(SHOTS, 'route-detail-5m.png'), fullPage: true });

    for (const label of ['1 h', '24 h']) {
      await page.getByRole('button', { name: label, exact: true }).click();
      await expect
        .poll(() => page.getByRole('button', { name: label, exact: true }).getAttribute('aria-pressed'))
        .toBe('true');
    }
    await page.locator('figure.chart svg').first().waitFor();
    await page.screenshot({ path: join(SHOTS, 'route-detail-24h.png'), fullPage: true });

    // The routes table: oldest pending and last delivery, and the sparkline, per row.
    await page.getByRole('link', { name: 'Routes', exact: true }).first().click();
    await expect.poll(() => row.getByRole('cell').nth(14).textContent()).toMatch(/ago$/);
    await page.screenshot({ path: join(SHOTS, 'routes-activity.png') });
    expect(w.errors).toEqual([]);
    expect(w.offLoopback).toEqual([]);
    await w.context.close();
  });

  it('shows the gap and the restart after the gateway restarts', async () => {
    await gw.ws.publish('orders', 'before the restart');
    await new Promise((r) => setTimeout(r, 1500));
    await gw.close();
    // Down for a few seconds: a gap of several 1 s buckets.
    await new Promise((r) => setTimeout(r, 3000));
    gw = await start();
    const w = await open('dark');
    const { page } = w;
    await signIn(w, ADMIN, `#/routes/${ROUTE}`);
    await page.getByRole('heading', { name: `Route ${ROUTE}` }).waitFor();
    await timeline(page).getByText('Gateway stopped').waitFor();
    await timeline(page).getByText('Gateway started').first().waitFor();
    const queue = page.locator('figure.chart', { hasText: 'In queue' });
    await expect.poll(() => queue.locator('rect.gap').count(), { timeout: 5000 }).toBeGreaterThan(0);
    await page.screenshot({ path: join(SHOTS, 'route-detail-restart-dark.png'), fullPage: true });
    expect(w.errors).toEqual([]);
    expect(w.offLoopback).toEqual([]);
    await w.context.close();
  });

  it('shows a read-only token no actions, and a token outside the route nothing of it', async () => {
    const r = await open('light', 820);
    await signIn(r, READER, `#/routes/${ROUTE}`);
    await r.page.getByRole('heading', { name: `Route ${ROUTE}` }).waitFor();
    await timeline(r.page).getByText('Store by ops').waitFor();
    for (const name of ['Store', 'Forward', 'Purge', 'Reset counters'])
      expect(await r.page.getByRole('button', { name, exact: true }).count()).toBe(0);
    await r.page.screenshot({ path: join(SHOTS, 'route-detail-read-only-tablet.png'), fullPage: true });
    expect(r.errors).toEqual([]);
    await r.context.close();

    // Hostile: the partner's globs (orders*) do not reach the payroll route.
    const p = await open();
    await signIn(p, PARTNER, `#/routes/${SECRET}`);
    await p.page.getByText(`No route ${SECRET} within this token's reach.`).waitFor();
    expect(await p.page.locator('figure.chart').count()).toBe(0);
    expect(await p.page.locator('ol.timeline').count()).toBe(0);
    for (const path of ['history', 'timeline']) {
      const res = await p.page.request.get(`${gw.url}/v1/routes/${SECRET}/${path}`);
      expect(res.status()).toBe(404);
    }
    const activity = (await (await p.page.request.get(`${gw.url}/v1/routes:activity`)).json()) as {
      routes: { name: string }[];
    };
    expect(activity.routes.map((x) => x.name)).toEqual([ROUTE]);
    await p.page.goto(`${gw.url}/ui#/routes`);
    await p.page.getByRole('cell', { name: ROUTE }).first().waitFor();
    expect(await p.page.getByText(SECRET).count()).toBe(0);
    expect(p.errors).toEqual([]);
    expect(p.offLoopback).toEqual([]);
    await p.context.close();
  });
});
