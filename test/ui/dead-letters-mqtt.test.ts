/**
 * The dashboard's dead letters, MQTT view and live deltas end to end in a real headless Chromium
 * (as test/ui/dashboard.test.ts: Debian's /usr/bin/chromium driven by playwright-core, skipped
 * where there is none; no console error or CSP violation, nothing off 127.0.0.1). Screenshots go
 * to .screenshots/ (not committed).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { Gateway } from '../../src/gateway.js';
import { hashToken } from '../../src/ingest/http/auth.js';
import { HAVE_CHROMIUM, launchChromium, openPage, SHOTS, type Watched } from '../support/browser.js';
import { connectClient, mqttUrl } from '../support/mqtt.js';
import { ScriptedTarget } from '../support/scripted-target.js';

const ADMIN = 'dlm-admin-token-0123456789abcdef';
const PLANT = 'dlm-plant-token-0123456789abcdef';
const ROUTE = 'orders-to-crm';

let browser: Browser | undefined;

/** A page whose console errors, CSP violations and every request's host are recorded. */
const open = (colorScheme: 'light' | 'dark' = 'light', width = 1280): Promise<Watched> =>
  openPage(browser!, colorScheme, width);

describe.skipIf(!HAVE_CHROMIUM)('dead letters, MQTT and live deltas in Chromium', () => {
  const target = new ScriptedTarget();
  let gw: Gateway;
  let dir: string;

  beforeAll(async () => {
    browser = await launchChromium();
    dir = await mkdtemp(join(tmpdir(), 'ws-ui-dlm-'));
    await writeFile(
      join(dir, 'waystation.yaml'),
      stringify({
        dataDir: './data',
        auth: {
          tokens: [
            { name: 'ops', tokenHash: hashToken(ADMIN), scopes: ['admin'] },
            { name: 'plant', tokenHash: hashToken(PLANT), scopes: ['read'], streams: ['temps'] },
          ],
        },
        http: { listen: '127.0.0.1:0' },
        mqtt: {
          listen: '127.0.0.1:0',
          allowAnonymous: true,
          storeAndForwardTopics: [
            { topic: 'plant/+/temp', stream: 'temps' },
            { topic: 'secret/#', stream: 'secrets' },
          ],
        },
        targets: { crm: { type: 'null' } },
        routes: {
          [ROUTE]: {
            streams: ['orders'],
            target: 'crm',
            storeAndForward: false,
            probeInterval: '20ms',
            retry: { attempts: 2, backoff: '10ms', backoffMax: '10ms' },
          },
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

  async function signIn(w: Watched, token: string): Promise<void> {
    await w.page.goto(`${gw.url}/ui`);
    await w.page.getByLabel('Token').fill(token);
    await w.page.getByRole('button', { name: 'Sign in' }).click();
    await w.page.locator('[role="status"][data-status="live"]').waitFor();
  }

  const letters = () => gw.ws.route(ROUTE).deadLetters.list();

  it('views payloads, and resubmits, deletes and exports a selection or a reason after confirming counts and bytes', async () => {
    target.behaviour = (d) => {
      const p = d.payload?.toString() ?? '';
      if (p.includes('bad')) return { kind: 'error', reason: 'the CRM refused the order' };
      if (p.includes('slow')) return { kind: 'nack', reason: 'the CRM is busy' };
      return { kind: 'ack' };
    };
    await gw.ws.publish('orders', '{"order":1,"note":"bad"}', {
      headers: { 'content-type': 'application/json' },
    });
    await gw.ws.publish('orders', 'bad order two');
    await gw.ws.publish('orders', Buffer.from([0x00, 0x01, 0x62, 0x61, 0x64, 0xff]));
    await gw.ws.publish('orders', 'slow one');
    await gw.ws.publish('orders', 'slow two');
    await expect.poll(() => letters().length, { timeout: 5000 }).toBe(5);

    const w = await open();
    const { page } = w;
    await signIn(w, ADMIN);
    await page.goto(`${gw.url}/ui#/dead-letters/${ROUTE}`);
    const rows = page.locator('table.dead-letters tbody tr');
    await expect.poll(() => rows.count()).toBe(5);
    const headers = await page.locator('table.dead-letters thead th').allTextContents();
    for (const h of ['Reason', 'Attempts', 'First failure', 'Last failure', 'Size'])
      expect(headers).toContain(h);
    const slowRow = rows.filter({ hasText: 'retries-exhausted' }).first();
    expect(await slowRow.getByRole('cell').nth(5).textContent()).toBe('2');
    expect(await slowRow.getByRole('cell').nth(8).textContent()).toBe('8 B');
    await page.screenshot({ path: join(SHOTS, 'dead-letters-list.png'), fullPage: true });

    // The JSON payload shows pretty-printed, then as hex and text; Download saves it whole.
    await rows.first().getByRole('button', { name: 'Payload', exact: true }).click();
    const dialog = page.getByRole('dialog');
    const pre = dialog.locator('pre.payload');
    await expect.poll(() => pre.textContent()).toBe('{\n  "order": 1,\n  "note": "bad"\n}');
    expect(await dialog.getByRole('button', { name: 'JSON' }).getAttribute('aria-pressed')).toBe('true');
    await dialog.getByText('application/json').waitFor();
    await page.screenshot({ path: join(SHOTS, 'dead-letter-payload-json.png') });
    await dialog.getByRole('button', { name: 'Hex' }).click();
    await expect.poll(() => pre.textContent()).toMatch(/^00000000 {2}7b 22 6f 72/);
    await page.screenshot({ path: join(SHOTS, 'dead-letter-payload-hex.png') });
    await dialog.getByRole('button', { name: 'Text' }).click();
    await expect.poll(() => pre.textContent()).toBe('{"order":1,"note":"bad"}');
    const [saved] = await Promise.all([
      page.waitForEvent('download'),
      dialog.getByRole('link', { name: 'Download' }).click(),
    ]);
    expect(await readFile((await saved.path())!, 'utf8')).toBe('{"order":1,"note":"bad"}');
    await dialog.getByRole('button', { name: 'Close' }).click();
    // A binary payload opens as hex.
    await rows.nth(2).getByRole('button', { name: 'Payload', exact: true }).click();
    await expect.poll(() => pre.textContent()).toMatch(/^00000000 {2}00 01 62 61 64 ff/);
    expect(await dialog.getByRole('button', { name: 'Hex' }).getAttribute('aria-pressed')).toBe('true');
    await dialog.getByRole('button', { name: 'Close' }).click();

    // Export of a selection: only the checked letters.
    await rows.nth(1).getByRole('checkbox').check();
    await rows.nth(3).getByRole('checkbox').check();
    const [selection] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export selected', exact: true }).click(),
    ]);
    const lines = (await readFile((await selection.path())!, 'utf8')).trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).payload ?? JSON.parse(l).payloadBase64)).toEqual([
      Buffer.from('bad order two').toString('base64'),
      Buffer.from('slow one').toString('base64'),
    ]);

    // Delete the selection: the confirmation states what it touches, the notice what was done.
    await page.getByRole('button', { name: 'Delete selected…' }).click();
    await dialog.getByText('the selected 2 dead letters (21 B) of route', { exact: false }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'dead-letters-confirm-selected.png') });
    await dialog.getByRole('button', { name: 'Delete 2', exact: true }).click();
    await page.getByText(`Deleted 2 dead letters of route ${ROUTE}.`).waitFor();
    await expect.poll(() => rows.count()).toBe(3);
    expect(letters().map((l) => l.reason)).toEqual(['error', 'error', 'retries-exhausted']);

    // Resubmit all of one reason: the filter, the counts and bytes, the count the API returned.
    await page.getByLabel('Reason').selectOption('retries-exhausted');
    await expect.poll(() => rows.count()).toBe(1);
    target.behaviour = 'up';
    await page.getByRole('button', { name: 'Resubmit all "retries-exhausted"…' }).click();
    await dialog
      .getByText('all of reason "retries-exhausted": 1 dead letter (8 B)', { exact: false })
      .waitFor();
    await page.screenshot({ path: join(SHOTS, 'dead-letters-confirm-reason.png') });
    await dialog.getByRole('button', { name: 'Resubmit 1', exact: true }).click();
    await page.getByText(`Resubmitted 1 dead letter of route ${ROUTE}.`).waitFor();
    await expect.poll(() => rows.count()).toBe(0);
    await expect.poll(() => letters().length).toBe(2);
    await expect.poll(async () => (await gw.ws.route(ROUTE).snapshot()).inQueue).toBe(0);

    // Export of all of them (a plain link: streamed, not held in the page).
    await page.getByLabel('Reason').selectOption('');
    await expect.poll(() => rows.count()).toBe(2);
    const [all] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export', exact: true }).click(),
    ]);
    expect((await readFile((await all.path())!, 'utf8')).trim().split('\n')).toHaveLength(2);
    expect(w.errors).toEqual([]);
    expect(w.offLoopback).toEqual([]);
    await w.context.close();
  });

  it("shows MQTT topics with subscribers by worst lag and the connected clients, within a token's reach", async () => {
    const url = mqttUrl(gw);
    const plant = await connectClient(url, { clientId: 'plant-reader', clean: false, protocolVersion: 4 });
    await plant.subscribeAsync('plant/#', { qos: 1 });
    await plant.endAsync();
    const spy = await connectClient(url, { clientId: 'secret-reader', protocolVersion: 5 });
    await spy.subscribeAsync('secret/#', { qos: 1 });
    const monitor = await connectClient(url, { clientId: 'plant-monitor', protocolVersion: 5 });
    await monitor.subscribeAsync('plant/+/temp', { qos: 1 });
    for (let i = 0; i < 3; i++)
      await gw.ws.publish('temps', `${20 + i}`, { headers: { 'mqtt-topic': 'plant/1/temp' } });

    const w = await open();
    const { page } = w;
    await signIn(w, ADMIN);
    await page.goto(`${gw.url}/ui#/mqtt`);
    const subscribers = page.locator('table.mqtt-subscribers tbody tr');
    await expect.poll(() => subscribers.count()).toBe(3);
    // Worst first: the reader that is away, 3 behind at position 0.
    const worst = subscribers.first();
    expect(await worst.getByRole('cell').allTextContents()).toEqual([
      'plant-reader',
      'plant/+/temp',
      'temps',
      '0',
      '3',
      '0',
      'away',
    ]);
    const topics = page.locator('table.mqtt-topics tbody tr');
    expect(await topics.first().getByRole('cell').first().textContent()).toBe('plant/+/temp');
    const clients = page.locator('table.mqtt-clients tbody tr');
    await expect.poll(() => clients.count()).toBe(2);
    const spyRow = clients.filter({ hasText: 'secret-reader' });
    expect(await spyRow.textContent()).toContain('MQTT 5.0');
    expect(await spyRow.textContent()).toContain('(anonymous)');
    // Live: three more stored while the reader is away show within 3 s.
    for (let i = 0; i < 3; i++)
      await gw.ws.publish('temps', `${30 + i}`, { headers: { 'mqtt-topic': 'plant/2/temp' } });
    await expect.poll(() => worst.getByRole('cell').nth(4).textContent(), { timeout: 3000 }).toBe('6');
    await page.screenshot({ path: join(SHOTS, 'mqtt.png'), fullPage: true });

    // A token whose globs reach only "temps" sees neither secret/# nor the client tracked there.
    const p = await open('dark', 820);
    await signIn(p, PLANT);
    await p.page.goto(`${gw.url}/ui#/mqtt`);
    const theirTopics = p.page.locator('table.mqtt-topics tbody tr');
    await expect.poll(() => theirTopics.count()).toBe(1);
    expect(await theirTopics.first().getByRole('cell').first().textContent()).toBe('plant/+/temp');
    const theirClients = p.page.locator('table.mqtt-clients tbody tr');
    await expect.poll(() => theirClients.count()).toBe(1);
    expect(await theirClients.first().textContent()).toContain('plant-monitor');
    expect(await p.page.locator('main').textContent()).not.toContain('secret');
    await p.page.screenshot({ path: join(SHOTS, 'mqtt-limited-dark-tablet.png'), fullPage: true });
    expect([...w.errors, ...p.errors]).toEqual([]);
    expect([...w.offLoopback, ...p.offLoopback]).toEqual([]);
    await w.context.close();
    await p.context.close();
  });

  it('keeps the view current from deltas after the first snapshot', async () => {
    const w = await open();
    const { page } = w;
    // Counts, in the page, the live stream's events by type (a string: typed without the DOM).
    await page.addInitScript(
      'window.__live = {}; const add = EventSource.prototype.addEventListener; EventSource.prototype.addEventListener = function (type, fn, o) { return add.call(this, type, function (e) { window.__live[type] = (window.__live[type] || 0) + 1; return fn.call(this, e); }, o); };',
    );
    await signIn(w, ADMIN);
    const row = page.getByRole('row').filter({ has: page.getByText(ROUTE, { exact: true }) });
    await row.getByText('forwarding', { exact: true }).waitFor();
    const store = await fetch(`${gw.url}/v1/routes/${ROUTE}/store`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(store.status).toBe(200);
    await row.getByText('held', { exact: true }).waitFor({ timeout: 3000 });
    for (let i = 0; i < 4; i++) await gw.ws.publish('orders', `later ${i}`);
    await expect.poll(() => row.getByRole('cell').nth(4).textContent(), { timeout: 3000 }).toBe('4');
    await fetch(`${gw.url}/v1/routes/${ROUTE}/forward`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    await row.getByText('forwarding', { exact: true }).waitFor({ timeout: 3000 });
    await expect.poll(() => row.getByRole('cell').nth(4).textContent(), { timeout: 3000 }).toBe('0');
    const seen = (await page.evaluate('window.__live')) as Record<string, number>;
    expect(seen.snapshot).toBe(1);
    expect(seen.delta).toBeGreaterThanOrEqual(3);
    expect(w.errors).toEqual([]);
    expect(w.offLoopback).toEqual([]);
    await w.context.close();
  });
});
