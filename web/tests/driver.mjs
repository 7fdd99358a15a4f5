// Drives headless Chromium (Debian's, through playwright-core) for tests/e2e/test_webmail.py: one JSON
// command per stdin line, one JSON answer per stdout line, so the Python test keeps control of the order of
// events (an SMTP message sent between two browser steps). Everything the page logs, every request it makes
// and every Content-Security-Policy violation it reports are kept for the test to inspect.
//
// Usage: node driver.mjs '{"userDataDir": "...", "width": 1280, "height": 800}'
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import readline from 'node:readline';

const options = JSON.parse(process.argv[2] || '{}');
const executablePath = process.env.MAGPIE_CHROMIUM || '/usr/bin/chromium';
const context = await chromium.launchPersistentContext(options.userDataDir, {
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: options.width || 1280, height: options.height || 800 },
  acceptDownloads: true,
});
const log = [];
const requests = [];
context.on('request', (request) => requests.push(request.url()));
let page = context.pages()[0] || (await context.newPage());
const watch = (p) => {
  p.on('console', (message) => log.push(`${message.type()}: ${message.text()}`));
  p.on('pageerror', (error) => log.push(`pageerror: ${error.message}`));
};
watch(page);
context.on('page', watch);

const timeout = (args) => (args && args.timeout) || 10000;
const loc = (selector) => page.locator(selector).first();

const ops = {
  goto: async ({ url }) => { await page.goto(url); },
  fill: async ({ selector, value }) => { await loc(selector).fill(value, { timeout: 10000 }); },
  click: async ({ selector }) => { await loc(selector).click({ timeout: 10000 }); },
  press: async ({ selector, key }) => {
    if (selector) await loc(selector).press(key);
    else await page.keyboard.press(key);
  },
  type: async ({ text }) => { await page.keyboard.type(text); },
  select: async ({ selector, label }) => { await loc(selector).selectOption({ label }); },
  wait: async (args) => { await loc(args.selector).waitFor({ state: args.state || 'visible', timeout: timeout(args) }); },
  // Waits until the element's text contains `text` (the page updates it by itself, e.g. on push).
  wait_text: async (args) => {
    await page.waitForFunction(([selector, text]) => {
      const nodes = document.querySelectorAll(selector);
      return [...nodes].some((n) => n.innerText.includes(text));
    }, [args.selector, args.text], { timeout: timeout(args), polling: 100 });
  },
  text: async ({ selector }) => loc(selector).innerText({ timeout: 10000 }),
  count: async ({ selector }) => page.locator(selector).count(),
  // `script` is a function's source: called with `arg` (JSON) in the page.
  eval: async ({ script, arg }) => page.evaluate(`(${script})(${JSON.stringify(arg === undefined ? null : arg)})`),
  // Evaluates in the first frame whose owner element matches `selector` (a sandboxed message frame).
  frame_eval: async ({ selector, script }) => {
    const handle = await page.locator(selector).first().elementHandle({ timeout: 10000 });
    const frame = await handle.contentFrame();
    return frame.evaluate(`(${script})()`);
  },
  frame_click: async ({ frame, selector }) => {
    await page.frameLocator(frame).locator(selector).first().click({ timeout: 5000 });
  },
  // The element at a point of the page's viewport, as "tag#id.class" (what a click there would hit).
  element_at: async ({ x, y }) => page.evaluate(([px, py]) => {
    const e = document.elementFromPoint(px, py);
    return e ? `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}${e.className ? `.${String(e.className).split(' ').join('.')}` : ''}` : null;
  }, [x, y]),
  box: async ({ selector }) => loc(selector).boundingBox(),
  files: async ({ selector, paths }) => { await loc(selector).setInputFiles(paths); },
  screenshot: async ({ path, fullPage }) => { await page.screenshot({ path, fullPage: !!fullPage }); },
  viewport: async ({ width, height }) => { await page.setViewportSize({ width, height }); },
  download: async ({ selector }) => {
    const [download] = await Promise.all([page.waitForEvent('download'), loc(selector).click()]);
    return { name: download.suggestedFilename(), path: await download.path() };
  },
  log: async () => log.splice(0),
  requests: async () => requests.splice(0),
  // Holds back, by `ms`, the POSTs to a URL matching `url` (a glob) whose body contains `contains` (the first
  // `times` of them; all without it): a slow answer, to show what the page does when answers come back in
  // another order than they were asked.
  // Holds back the POSTs to `url` whose body contains `contains`: `ms` each (the first `times` of them, or
  // all), or, when `ms` is a list, the first one ms[0], the next ms[1] and so on.
  delay_requests: async ({ url, contains, ms, times }) => {
    const delays = Array.isArray(ms) ? [...ms] : null;
    let left = delays ? delays.length : times === undefined ? Infinity : times;
    await page.route(url, async (route) => {
      const body = route.request().postData() || '';
      if (left > 0 && body.includes(contains)) {
        left -= 1;
        await new Promise((resolve) => setTimeout(resolve, delays ? delays.shift() : ms));
      }
      await route.continue();
    });
  },
  cookies: async () => context.cookies(),
  reload: async () => { await page.reload(); },
  close: async () => { await context.close(); process.exit(0); },
};

const lines = readline.createInterface({ input: process.stdin });
process.stdout.write(JSON.stringify({ ready: true }) + '\n');
for await (const line of lines) {
  if (!line.trim()) continue;
  const { id, op, args } = JSON.parse(line);
  try {
    if (!ops[op]) throw new Error(`unknown op ${op}`);
    const value = await ops[op](args || {});
    process.stdout.write(JSON.stringify({ id, ok: true, value: value === undefined ? null : value }) + '\n');
  } catch (error) {
    // What the page showed when the step failed, so that a failure met once (in CI) explains itself: the
    // text of the step's selector, the page's last log lines and, with `failureDir`, a screenshot.
    let detail = '';
    try {
      if (args && args.selector) {
        const texts = await page.locator(args.selector).allInnerTexts();
        detail += `; ${args.selector} shows ${JSON.stringify(texts).slice(0, 600)}`;
        if (args.selector !== '.notice') {
          const notices = await page.locator('.notice').allInnerTexts();
          if (notices.length) detail += `; .notice shows ${JSON.stringify(notices).slice(0, 300)}`;
        }
      }
      if (log.length) detail += `; page log: ${log.slice(-8).join(' | ').slice(0, 1200)}`;
      if (options.failureDir) {
        mkdirSync(options.failureDir, { recursive: true });
        const shot = `${options.failureDir}/failed-${id}-${op}.png`;
        await page.screenshot({ path: shot });
        detail += `; screenshot ${shot}`;
      }
    } catch (e) {
      detail += `; (no more detail: ${e && e.message})`;
    }
    process.stdout.write(JSON.stringify({ id, ok: false, error: String(error && error.message || error) + detail }) + '\n');
  }
}
await context.close();
