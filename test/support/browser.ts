/**
 * The dashboard's browser tests: Debian's headless Chromium (/usr/bin/chromium, installed by
 * scripts/install-chromium.sh, which .ci/run calls) driven by playwright-core, the bundle built
 * first, and pages that record console errors, CSP violations and every request's host.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
// Without Chromium the browser tests are skipped on a developer's machine, said out loud; under CI
// (which installs it first) a missing browser fails the run instead of passing it quietly.
if (!HAVE_CHROMIUM) {
  const how = `${CHROMIUM} is missing: run scripts/install-chromium.sh (Debian's chromium) to run the dashboard's browser tests`;
  if (process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false')
    throw new Error(how);
  console.warn(`test/ui skipped: ${how}.`);
}
/** Screenshots of the runs (gitignored). */
export const SHOTS = join(process.cwd(), '.screenshots');

export interface Watched {
  page: Page;
  context: BrowserContext;
  errors: string[];
  offLoopback: string[];
}

/** Builds the dashboard bundle and starts Chromium with the flags these machines need. */
export async function launchChromium(): Promise<Browser> {
  execFileSync(process.execPath, ['scripts/build-ui.mjs'], { stdio: 'pipe' });
  mkdirSync(SHOTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** A page whose console errors, CSP violations and every request's host are recorded. */
export async function openPage(
  browser: Browser,
  colorScheme: 'light' | 'dark' = 'light',
  width = 1280,
): Promise<Watched> {
  const context = await browser.newContext({ viewport: { width, height: 900 }, colorScheme });
  const page = await context.newPage();
  const errors: string[] = [];
  const offLoopback: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('request', (r) => {
    const url = new URL(r.url());
    if (url.protocol !== 'data:' && url.hostname !== '127.0.0.1') offLoopback.push(r.url());
  });
  // Runs in the page (a string: the tests are typed without the DOM).
  await page.addInitScript(
    "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));",
  );
  return { page, context, errors, offLoopback };
}

/** A loopback port free now (a gateway restarted in a test comes back on the same one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}
