// The operator console: a group of dead letters replayed behind its dry
// run, a compensation retried behind its confirmation and found in the
// order's audit trail; and who may not come in, and forms without their
// CSRF token.
const { test, expect } = require('@playwright/test');
const env = require('../lib/env');
const { Api, DEMO, newCustomer, unique } = require('../lib/api');
const { hold, injectDeadLetter, paymentSucceeded } = require('../lib/bus');
const ui = require('../lib/ui');

const KEYBOARD = '00000000-0000-7000-8000-000000000001';

test('an operator replays a group of dead letters after its dry run, and the group is gone', async ({ page, request }) => {
  // A completed order, and a late copy of its PaymentSucceeded (a fresh
  // event id) in the order service's dead letters, failed with an error of
  // this run's own: the group is this test's alone. Replayed, the order
  // service ignores it (the order has moved on) and acknowledges it.
  const shopper = await Api.register(request, newCustomer('dlq'));
  const placed = await shopper.placeOrder([{ product_id: KEYBOARD, quantity: 1 }]);
  const order = await shopper.waitForStatus(placed.id, 'COMPLETED');
  const [payment] = await shopper.get(`/api/v1/payments?order_id=${order.id}`);
  const envelope = paymentSucceeded(order, payment);
  const error = `web-tests ${unique('dl')}: the handler timed out (injected)`;
  await injectDeadLetter({ service: 'order', routingKey: 'payment.succeeded.v1', envelope, error });

  await ui.signIn(page, DEMO.operator, '/console/dead-letters');
  await expect(page).toHaveURL(/\/console\/dead-letters$/);
  const group = page
    .locator('section.group[data-service="order"][data-event-type="PaymentSucceeded"]')
    .filter({ hasText: error });
  await expect(group).toHaveCount(1);
  await expect(group.locator('h2')).toContainText('PaymentSucceeded → order');
  await expect(group.locator('.count')).toHaveText('(1)');
  await expect(group.locator('p.error code')).toHaveText(error);
  await group.locator('summary', { hasText: 'The letters' }).click();
  await expect(group.locator(`a[href="/console/dead-letters/order/${envelope.id}"]`)).toBeVisible();

  // The letter itself, its message shown.
  await group.locator(`a[href="/console/dead-letters/order/${envelope.id}"]`).click();
  await expect(page.locator('dl.summary')).toContainText('payment.succeeded.v1');
  await expect(page.locator('pre.message')).toContainText(order.id);
  await page.goBack();

  // The dry run says what a replay would take; nothing is replayed yet.
  await group.getByRole('link', { name: 'Replay the group…' }).click();
  await expect(page).toHaveURL(/\/console\/dead-letters\/replay\?/);
  await expect(page.locator('h1')).toHaveText('Replay a group of dead letters?');
  await expect(page.locator('#dry-run')).toContainText(/Dry run: 1 letters? of PaymentSucceeded for order/);
  await expect(page.locator('#dry-run strong')).toHaveText('1');
  await expect(page.locator('main')).toContainText(envelope.id);

  await page.getByRole('button', { name: /^Replay 1 letters?$/ }).click();
  await expect(page.locator('h1')).toHaveText('Replay: done');
  await expect(page.locator('.notice.success')).toContainText(/^1 letters? replayed/);
  await expect(page.locator('#group-left')).toContainText(/Letters left in the group: 0\b/);

  await page.getByRole('link', { name: 'Back to the dead letters' }).click();
  await expect(page).toHaveURL(/\/console\/dead-letters$/);
  await expect(page.locator('section.group').filter({ hasText: error })).toHaveCount(0);
  if ((await page.locator('section.group').count()) === 0) {
    await expect(page.locator('#no-dead-letters')).toHaveText('No dead letters.');
  }

  // The order service took it (its queue is empty again) and let it be:
  // the order is still COMPLETED, and the letter did not come back.
  await page.goto('/console');
  const orderQueue = page.locator('table', { hasText: 'Queue depths' }).locator('tr', { hasText: /^order/ });
  await expect(orderQueue.locator('td')).toHaveText('0', { timeout: 10_000 });
  await page.goto(`/console/orders/${order.id}`);
  await expect(page.locator('#status')).toHaveText('COMPLETED');
  await page.goto('/console/dead-letters');
  await expect(page.locator('section.group').filter({ hasText: error })).toHaveCount(0);
});

test('an operator retries the compensation of an order that requires attention, and the audit trail says who', async ({ browser, playwright }) => {
  test.skip(!env.slowUrl, 'needs a system with a short step timeout (run.sh sets AGORA_SLOW_URL)');
  const step = env.slowStepSecs;
  // Two steps run out of time (each found by a sweep a quarter of a step later).
  test.setTimeout(60_000 + 4 * step * 1000);
  const slow = await playwright.request.newContext({ baseURL: env.slowUrl });
  const context = await browser.newContext({ baseURL: env.slowUrl });
  const holds = [];
  try {
    // The order's payment never answers, so its RESERVED step runs out of
    // time and it is cancelled; the inventory never confirms the stock
    // release either, so the compensation runs out of time too: the order
    // requires attention, and stays so until what is held is let go.
    const shopper = await Api.register(slow, newCustomer('attention'));
    const me = await shopper.me();
    holds.push(await hold({
      service: 'payment', routingKey: 'payment.requested.v1', needle: `"customer_id":"${me.id}"`, dataDir: env.slowDataDir,
    }));
    const placed = await shopper.placeOrder([{ product_id: KEYBOARD, quantity: 1 }]);
    // Reserved first (distributed, the hold takes the inventory's whole queue).
    await shopper.waitForStatus(placed.id, 'RESERVED', step * 1000);
    holds.push(await hold({
      service: 'inventory', routingKey: 'order.cancelled.v1', needle: `"order_id":"${placed.id}"`, dataDir: env.slowDataDir,
    }));
    const stuck = await shopper.waitForStatus(placed.id, 'REQUIRES_ATTENTION', 4 * step * 1000 + 5_000);
    expect(stuck.reason).toBe('not confirmed in time: stock release');
    const operator = await (await Api.signIn(slow, DEMO.operator)).me();

    const page = await context.newPage();
    await ui.signIn(page, DEMO.operator, '/console/attention');
    await expect(page.locator('h1')).toHaveText('Orders that require attention');
    const row = page.locator(`tr[data-order="${placed.id}"]`);
    await expect(row).toContainText('REQUIRES ATTENTION');
    await expect(row).toContainText('not confirmed in time: stock release');
    await row.getByRole('link').click();
    await expect(page).toHaveURL(new RegExp(`/console/orders/${placed.id}$`));
    await expect(page.locator('dl.summary')).toContainText('REQUIRES ATTENTION');
    await expect(page.locator('#audit-trail')).toHaveCount(0); // no one acted yet

    // Behind its confirmation page.
    await page.getByRole('link', { name: 'Retry compensation…' }).click();
    await expect(page).toHaveURL(new RegExp(`/console/orders/${placed.id}/retry-compensation$`));
    await expect(page.locator('h1')).toContainText('Retry compensation order');
    await expect(page.locator('main')).toContainText('recorded on the order with your account');
    await page.getByRole('button', { name: 'Confirm: Retry compensation' }).click();

    await expect(page).toHaveURL(new RegExp(`/console/orders/${placed.id}$`));
    const trail = page.locator('#audit-trail');
    await expect(trail).toBeVisible();
    const entry = trail.locator('tbody tr', { hasText: 'operator: retry compensation' });
    await expect(entry).toHaveCount(1);
    await expect(entry.locator('td').nth(1)).toHaveText(`operator ${operator.id}`);
    await expect(entry).toContainText('COMPENSATING');
    // The compensation was emitted again: the journey shows a second
    // OrderCancelled.
    await expect(page.locator('#journey tr[data-event-type="OrderCancelled"]')).toHaveCount(2);
  } finally {
    for (const h of holds) await h.release();
    await context.close();
    await slow.dispose();
  }
});

test('the console is for operators; a form without its CSRF token changes nothing', async ({ page, request }) => {
  // Anonymous: sent to sign in, coming back to the console.
  await page.goto('/console');
  await expect(page).toHaveURL(/\/login\?next=%2Fconsole$/);
  await expect(page.locator('h1')).toHaveText('Sign in');

  // A customer: refused.
  const customer = newCustomer('csrf');
  await Api.register(request, customer);
  await ui.signIn(page, customer);
  const refused = await page.goto('/console');
  expect(refused.status()).toBe(403);
  await expect(page.locator('h1')).toHaveText('Not allowed');
  await expect(page.locator('main')).toContainText('for operators');
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Console' })).toHaveCount(0);
  for (const path of ['/console/orders', '/console/dead-letters', '/console/audit']) {
    expect((await page.goto(path)).status(), path).toBe(403);
  }

  // Signed in, but the form comes without its token: refused, 403.
  const sent = await page.request.post('/cart/items', {
    form: { product_id: KEYBOARD, quantity: '1' },
    maxRedirects: 0,
  });
  expect(sent.status()).toBe(403);
  expect(await sent.text()).toContain('CSRF');
  // A wrong token is no better.
  const wrong = await page.request.post('/cart/items', {
    form: { _csrf: 'x'.repeat(43), product_id: KEYBOARD, quantity: '1' },
    maxRedirects: 0,
  });
  expect(wrong.status()).toBe(403);

  // The catalog's own form, its hidden token removed, then sent.
  await page.goto('/');
  const card = page.locator('li.product[data-sku="KB-001"]');
  await card.locator('input[name="_csrf"]').evaluate((input) => input.remove());
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/cart/items') && r.request().method() === 'POST'),
    card.locator('form.add button[type="submit"]').click(),
  ]);
  expect(response.status()).toBe(403);
  await expect(page.locator('h1')).toHaveText('Refused');
  await expect(page.locator('[role="alert"]')).toContainText('CSRF token does not match');

  // Nothing changed: the cart is empty.
  await page.goto('/cart');
  await expect(page.locator('main')).toContainText('Your cart is empty.');
  await expect(page.locator('table.cart')).toHaveCount(0);
});
