// Headless Debian Chromium through playwright-core, as CI runs it: no sandbox (CI runs
// as root), no GPU, nothing fetched in the background, a fresh profile per run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A fresh browser context; `close()` also removes its profile directory. */
export async function launch() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: apt-get install chromium chromium-driver (or set CHROMIUM_PATH)`);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rg-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1400, height: 900 },
  });
  return {
    context,
    close: async () => {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Opens `url`, forwards the page's console, waits for body[data-status] to be done or
 * error, and returns { status, result } (result parsed when it is JSON). */
export async function runPage(context, url, timeoutMs) {
  const page = await context.newPage();
  page.on('console', (m) => console.log(`  [page ${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => console.log(`  [page error] ${e.message}`));
  await page.goto(url);
  await page.waitForFunction(
    () => ['done', 'error'].includes(document.body.dataset.status),
    null,
    { timeout: timeoutMs, polling: 250 },
  );
  const status = await page.evaluate(() => document.body.dataset.status);
  const text = await page.evaluate(() => document.getElementById('result').textContent);
  let result = text;
  try { result = JSON.parse(text); } catch { /* an error message */ }
  return { page, status, result };
}
