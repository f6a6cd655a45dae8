/**
 * The dashboard end to end in a real headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core; scripts/install-chromium.sh installs it, .ci/run calls that). Skipped, with a
 * note, where there is no Chromium. Screenshots go to .screenshots/ (not committed).
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

const ADMIN = 'ui-admin-token-0123456789abcdef';
const READER = 'ui-read-token-0123456789abcdef';
const ROUTE = 'orders-to-crm';
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

let browser: Browser | undefined;

/** A page whose console errors, CSP violations and every request's host are recorded. */
const open = (colorScheme: 'light' | 'dark' = 'light', width = 1280): Promise<Watched> =>
  openPage(browser!, colorScheme, width);

function routeRow(page: Page) {
  return page.getByRole('row').filter({ has: page.getByText(ROUTE, { exact: true }) });
}

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  let v = await read();
  while (!ok(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    v = await read();
  }
  return v;
}

describe.skipIf(!HAVE_CHROMIUM)('the dashboard in Chromium', () => {
  const target = new ScriptedTarget();
  let gw: Gateway;
  // Not tempDir(): that one is removed after each test, and this gateway lives for all of them.
  let dir: string;

  beforeAll(async () => {
    browser = await launchChromium();
    dir = await mkdtemp(join(tmpdir(), 'ws-ui-'));
    await writeFile(
      join(dir, 'waystation.yaml'),
      stringify({
        dataDir: './data',
        auth: {
          tokens: [
            { name: 'ops', tokenHash: hashToken(ADMIN), scopes: ['admin'] },
            { name: 'viewer', tokenHash: hashToken(READER), scopes: ['read'] },
          ],
        },
        http: { listen: '127.0.0.1:0' },
        targets: { crm: { type: 'null' }, archive: { type: 'null' } },
        routes: {
          [ROUTE]: { streams: ['orders'], target: 'crm', probeInterval: '100ms' },
          'orders-archive': { streams: ['orders'], target: 'archive', retention: { maxBytes: '1KiB' } },
        },
      }),
    );
    gw = await Gateway.start({
      configPath: join(dir, 'waystation.yaml'),
      listen: '127.0.0.1:0',
      logger: pino({ level: 'silent' }),
      waystation: { targets: { crm: target } },
    });
  });

  afterAll(async () => {
    await browser?.close();
    await gw?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const api = async (method: string, path: string, token = ADMIN) =>
    fetch(`${gw.url}${path}`, { method, headers: { authorization: `Bearer ${token}` } });

  async function signIn(w: Watched, token: string): Promise<void> {
    await w.page.goto(`${gw.url}/ui`);
    await w.page.getByLabel('Token').fill(token);
    await w.page.getByRole('button', { name: 'Sign in' }).click();
    await routeRow(w.page).waitFor();
  }

  it('signs in, acts, and shows changes made elsewhere, with no console error and nothing off loopback', async () => {
    const w = await open();
    const { page } = w;
    const index = await page.goto(`${gw.url}/ui`);
    expect(index!.headers()['content-security-policy']).toBe(CSP);
    await page.getByLabel('Token').waitFor();
    await page.screenshot({ path: join(SHOTS, 'sign-in.png') });
    await signIn(w, ADMIN);
    const row = routeRow(page);
    await expect.poll(() => row.textContent()).toContain('forwarding');
    await page.getByRole('status').filter({ hasText: 'Live' }).first().waitFor();

    // A change made through the REST API shows within 3 s.
    expect((await api('POST', `/v1/routes/${ROUTE}/store`)).status).toBe(200);
    await row.getByText('held', { exact: true }).waitFor({ timeout: 3000 });
    expect((await api('POST', `/v1/routes/${ROUTE}/forward`)).status).toBe(200);
    await row.getByText('forwarding', { exact: true }).waitFor({ timeout: 3000 });

    // Store holds the route; messages wait; Forward drains them.
    await row.getByRole('button', { name: 'Store', exact: true }).click();
    await row.getByText('held', { exact: true }).waitFor({ timeout: 3000 });
    expect((await gw.ws.route(ROUTE).snapshot()).state).toBe('held');
    for (let i = 0; i < 5; i++) await gw.ws.publish('orders', `order ${i}`);
    await expect.poll(async () => (await gw.ws.route(ROUTE).snapshot()).inQueue).toBe(5);
    const inQueueCell = row.getByRole('cell').nth(4);
    await expect.poll(() => inQueueCell.textContent(), { timeout: 3000 }).toBe('5');
    await page.screenshot({ path: join(SHOTS, 'overview-held.png'), fullPage: true });
    const forwardedBefore = (await gw.ws.route(ROUTE).snapshot()).forwarded;
    await row.getByRole('button', { name: 'Forward', exact: true }).click();
    const drained = await until(
      () => gw.ws.route(ROUTE).snapshot(),
      (s) => s.inQueue === 0 && s.state === 'forwarding',
    );
    expect(drained.forwarded - forwardedBefore).toBe(5);
    await row.getByText('forwarding', { exact: true }).waitFor({ timeout: 3000 });
    await page.getByText(/forwards again/).waitFor();

    // Purge asks for the route's name and reports the count.
    await row.getByRole('button', { name: 'Store', exact: true }).click();
    await row.getByText('held', { exact: true }).waitFor({ timeout: 3000 });
    for (let i = 0; i < 3; i++) await gw.ws.publish('orders', `stale ${i}`);
    await expect.poll(async () => (await gw.ws.route(ROUTE).snapshot()).inQueue).toBe(3);
    await expect.poll(() => inQueueCell.textContent(), { timeout: 3000 }).toBe('3');
    await row.getByRole('button', { name: 'Purge', exact: true }).click();
    const dialog = page.getByRole('dialog');
    const confirm = dialog.getByRole('button', { name: 'Purge', exact: true });
    await expect.poll(() => confirm.isDisabled()).toBe(true);
    await dialog.getByLabel('Route name').fill('orders-to-cr');
    expect(await confirm.isDisabled()).toBe(true);
    await dialog.getByLabel('Route name').fill(ROUTE);
    await dialog.getByText('Purging drops 3 waiting messages', { exact: false }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'purge-dialog.png') });
    await confirm.click();
    await page.getByText(`Purged 3 messages from route ${ROUTE}.`).waitFor();
    expect((await gw.ws.route(ROUTE).snapshot()).inQueue).toBe(0);
    await row.getByRole('button', { name: 'Reset counters', exact: true }).click();
    await page.getByText(`Counters of route ${ROUTE} reset.`).waitFor();
    await row.getByRole('button', { name: 'Forward', exact: true }).click();
    await row.getByText('forwarding', { exact: true }).waitFor({ timeout: 3000 });

    // Dead letters: resubmit one, delete one.
    target.behaviour = () => ({ kind: 'error', reason: 'the CRM refused the order' });
    for (let i = 0; i < 3; i++) await gw.ws.publish('orders', `poison ${i}`);
    await expect.poll(() => gw.ws.route(ROUTE).deadLetters.list().length).toBe(3);
    target.behaviour = 'up';
    await page
      .getByRole('alert')
      .filter({ hasText: 'Dead letters grew from 0 to 3' })
      .waitFor({ timeout: 3000 });
    await page.screenshot({ path: join(SHOTS, 'overview-alert.png'), fullPage: true });
    await page.goto(`${gw.url}/ui#/dead-letters/${ROUTE}`);
    const letters = page.locator('table.dead-letters tbody tr');
    await expect.poll(() => letters.count()).toBe(3);
    await page.screenshot({ path: join(SHOTS, 'dead-letters.png'), fullPage: true });
    await letters.first().getByRole('button', { name: 'Resubmit', exact: true }).click();
    await page.getByText(`Resubmitted 1 dead letter of route ${ROUTE}.`).waitFor();
    await expect.poll(() => letters.count()).toBe(2);
    await letters.first().getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByText(`Deleted 1 dead letter of route ${ROUTE}.`).last().waitFor();
    await expect.poll(() => letters.count()).toBe(1);
    await page.getByRole('button', { name: /Delete all/ }).click();
    const deleted = page.getByText(`Deleted 1 dead letter of route ${ROUTE}.`);
    const noticesBefore = await deleted.count();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete 1' }).click();
    // The single delete's notice may still show: wait for the bulk delete's own notice.
    await expect.poll(() => deleted.count()).toBe(noticesBefore + 1);
    await expect.poll(() => gw.ws.route(ROUTE).deadLetters.list().length).toBe(0);
    await expect.poll(() => letters.count()).toBe(0);
    await expect.poll(async () => (await gw.ws.route(ROUTE).snapshot()).inQueue).toBe(0);

    await page.goto(`${gw.url}/ui#/streams`);
    await page.getByRole('cell', { name: 'orders', exact: true }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'streams.png') });
    expect(w.errors).toEqual([]);
    expect(w.offLoopback).toEqual([]);
    await w.context.close();
  });

  it('shows a read-only token no action buttons, and the server refuses its actions (403)', async () => {
    const w = await open('dark', 820);
    await signIn(w, READER);
    const { page } = w;
    await routeRow(page).getByText('forwarding', { exact: true }).waitFor();
    await page.getByText('viewer (read only)').waitFor();
    for (const name of ['Store', 'Forward', 'Purge', 'Reset counters'])
      expect(await page.getByRole('button', { name, exact: true }).count()).toBe(0);
    await page.screenshot({ path: join(SHOTS, 'read-only-dark-tablet.png'), fullPage: true });
    const session = (await (await page.request.get(`${gw.url}/ui/session`)).json()) as { csrf: string };
    const refused = await page.request.post(`${gw.url}/v1/routes/${ROUTE}/store`, {
      headers: { 'x-waystation-csrf': session.csrf, origin: gw.url },
    });
    expect(refused.status()).toBe(403);
    expect((await gw.ws.route(ROUTE).snapshot()).state).toBe('forwarding');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Token').waitFor();
    expect(w.errors).toEqual([]);
    expect(w.offLoopback).toEqual([]);
    await w.context.close();
  });

  it('shows Reconnecting while the gateway restarts, then Live', async () => {
    const port = await freePort();
    const startOn = () =>
      Gateway.start({
        dataDir: join(dir, 'restart'),
        listen: `127.0.0.1:${port}`,
        logger: pino({ level: 'silent' }),
      });
    let restarting = await startOn();
    try {
      const w = await open();
      const { page } = w;
      await page.goto(`${restarting.url}/ui`);
      const indicator = page.locator('[role="status"][data-status]');
      await expect.poll(() => indicator.getAttribute('data-status')).toBe('live');
      await restarting.close();
      await expect.poll(() => indicator.textContent(), { timeout: 5000 }).toContain('Reconnecting');
      await page.screenshot({ path: join(SHOTS, 'reconnecting.png') });
      restarting = await startOn();
      await expect.poll(() => indicator.getAttribute('data-status'), { timeout: 8000 }).toBe('live');
      expect(await indicator.textContent()).toContain('Live');
      // The browser reports the refused connections while the gateway was down; nothing else.
      expect(w.errors.filter((e) => !/ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE/.test(e))).toEqual([]);
      expect(w.offLoopback).toEqual([]);
      await w.context.close();
    } finally {
      await restarting.close();
    }
  });
});
