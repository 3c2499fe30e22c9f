// Every main page, as the one who uses it sees it: axe-core finds no serious
// or critical violation, the Content-Security-Policy refuses nothing (no
// inline script or style slipped in, the live pages' scripts included) and
// no script fails. Load timings are printed.
const { test, expect } = require('@playwright/test');
const { Api, DEMO, newCustomer } = require('../lib/api');
const { hold } = require('../lib/bus');
const { watch, axeProblems, timing } = require('../lib/pagecheck');
const ui = require('../lib/ui');

const KEYBOARD = '00000000-0000-7000-8000-000000000001';

test('the main pages have no serious accessibility violation and nothing the CSP refuses', async ({ page, request }) => {
  test.setTimeout(90_000);
  const customer = newCustomer('a11y');
  const shopper = await Api.register(request, customer);
  const placed = await shopper.placeOrder([{ product_id: KEYBOARD, quantity: 1 }]);
  await shopper.waitForStatus(placed.id, 'COMPLETED');

  const seen = await watch(page);
  const problems = [];
  const timings = [];
  // `navigated`: the page was loaded for this check (its timing is its own).
  const check = async (name, ready, navigated = true) => {
    await test.step(name, async () => {
      if (ready) await ready();
      await page.waitForLoadState('load');
      problems.push(...(await axeProblems(page, name)));
      if (navigated) timings.push({ page: name, ...(await timing(page)) });
    });
  };
  const visit = (name, path, ready) => check(name, async () => {
    const response = await page.goto(path);
    expect(response.status(), `${name} (${path})`).toBeLessThan(400);
    if (ready) await ready();
  });

  await visit('login', '/login');

  await ui.signIn(page, customer);
  await visit('catalog', '/', () => expect(page.locator('li.product').first()).toBeVisible());
  await visit('product', `/products/${KEYBOARD}`, () => expect(page.locator('.product-page')).toBeVisible());
  await page.locator('.product-page form.add button[type="submit"]').click();
  await check('cart', () => expect(page.locator('table.cart')).toBeVisible());
  await visit('checkout', '/checkout', () => expect(page.locator('form.checkout')).toBeVisible());
  await ui.fillCheckout(page, { email: 'bad', country: 'F' });
  await ui.placeOrder(page);
  await check('checkout with errors', () => expect(page.locator('#err-email')).toBeVisible());
  await visit('order', `/orders/${placed.id}`, () => expect(page.locator('#status')).toHaveText('COMPLETED'));

  // An order followed live: the page's scripts at work (htmx, its SSE
  // extension, the swaps), not only loaded. Its payment waits until the
  // page is open.
  const me = await shopper.me();
  const payment = await hold({ service: 'payment', routingKey: 'payment.requested.v1', needle: `"customer_id":"${me.id}"` });
  try {
    const live = await shopper.placeOrder([{ product_id: KEYBOARD, quantity: 1 }]);
    await visit('live order', `/orders/${live.id}`, () => expect(page.locator('.progress')).toBeVisible());
    await payment.waitHeld();
  } finally {
    await payment.release();
  }
  await check('live order, completed', () => expect(page.locator('#status')).toHaveText('COMPLETED', { timeout: 20_000 }), false);
  await visit('my orders', '/orders', () => expect(page.locator('table.orders')).toBeVisible());

  await ui.signOut(page);
  await ui.signIn(page, DEMO.operator, '/console');
  await check('console dashboard', async () => {
    // The dashboard refreshes itself: one refresh, through htmx, under the CSP.
    await page.waitForResponse((r) => r.url().endsWith('/console/live') && r.ok(), { timeout: 10_000 });
    await expect(page.locator('#in-flight')).toBeVisible();
  });
  await visit('console orders', '/console/orders', () => expect(page.locator('table.orders')).toBeVisible());
  await visit('console order', `/console/orders/${placed.id}`, () => expect(page.locator('#journey')).toBeVisible());
  await visit('attention', '/console/attention');
  await visit('dead letters', '/console/dead-letters');
  await visit('audit', '/console/audit', () => expect(page.getByRole('button', { name: 'Run the audit' })).toBeVisible());

  console.log(`page load timings (ms; ttfb = request to first byte):\n${timings
    .map((t) => `  ${t.page.padEnd(22)} ttfb ${String(t.ttfb).padStart(4)}  load ${String(t.load).padStart(4)}  ${t.bytes} B`)
    .join('\n')}`);
  expect.soft(problems.length, `axe found serious or critical violations:\n${problems.join("\n")}`).toBe(0);
  expect.soft(seen.csp.length, `the Content-Security-Policy refused:\n${seen.csp.join("\n")}`).toBe(0);
  expect.soft(seen.errors.length, `scripts failed:\n${seen.errors.join("\n")}`).toBe(0);
});
