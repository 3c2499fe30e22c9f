// The storefront, as a shopper uses it: register, fill a cart from the
// catalog and a product page, check out, and follow the order live; a
// declined card; more than the stock; a form with mistakes.
const { test, expect } = require('@playwright/test');
const env = require('../lib/env');
const { Api, DEMO, newCustomer, unique } = require('../lib/api');
const { hold } = require('../lib/bus');
const ui = require('../lib/ui');

/** Two products of the test's own (unique SKUs, plenty of stock). */
async function twoProducts(request) {
  const admin = await Api.signIn(request, DEMO.admin);
  const a = await admin.createProduct({ name: `Walnut desk organiser ${unique('n')}`, sku: unique('WT-ORG'), price: 2450 });
  const b = await admin.createProduct({ name: `Linen notebook ${unique('n')}`, sku: unique('WT-NB'), price: 1190 });
  return [a, b];
}

/** A customer of its own, registered through the API and signed in in the browser. */
async function signedInCustomer(page, request, tag) {
  const customer = newCustomer(tag);
  const api = await Api.register(request, customer);
  await ui.signIn(page, customer);
  return { customer, api };
}

test('a shopper registers, fills the cart, checks out and watches the order complete live', async ({ page, request }) => {
  const [first, second] = await twoProducts(request);
  const customer = newCustomer('register');

  // Registration, through the form.
  await page.goto('/register');
  await page.getByLabel('Name').fill(customer.name);
  await page.getByLabel('Email').fill(customer.email);
  await page.getByLabel('Password').fill(customer.password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.locator('.account .who')).toHaveText('Signed in as customer');

  // One from the catalog, the other from its product page; then a
  // quantity set in the cart.
  await ui.addFromCatalog(page, first.sku);
  await ui.addFromProductPage(page, second.sku, 2);
  const firstRow = page.locator(`tr[data-sku="${first.sku}"]`);
  const secondRow = page.locator(`tr[data-sku="${second.sku}"]`);
  await expect(secondRow.locator('input.qty')).toHaveValue('2');
  await firstRow.getByLabel(`Quantity of ${first.name}`).fill('3');
  await firstRow.getByRole('button', { name: 'Update' }).click();
  await expect(page).toHaveURL(/\/cart$/);
  await expect(firstRow.locator('input.qty')).toHaveValue('3');
  await expect(firstRow).toContainText('73.50 EUR'); // 3 × 24.50
  await expect(secondRow).toContainText('23.80 EUR'); // 2 × 11.90
  await expect(page.locator('#cart-total')).toHaveText('97.30 EUR');

  await ui.goToCheckout(page);
  await expect(page.locator('#line-0')).toContainText(first.name);
  await expect(page.locator('#line-1')).toContainText(second.name);
  // Prefilled from the account.
  await expect(page.locator('#f-email')).toHaveValue(customer.email);
  await expect(page.locator('#f-name')).toHaveValue(customer.name);
  await ui.fillCheckout(page, { email: customer.email });

  // The payment step waits (its consumer does not see this customer's
  // request) until the order page is open: the page then has something to
  // follow. Without it the saga may well be over before the page loads.
  const me = await (await Api.signIn(request, customer)).me();
  const payment = await hold({
    service: 'payment',
    routingKey: 'payment.requested.v1',
    needle: `"customer_id":"${me.id}"`,
  });
  const streams = [];
  page.on('response', (r) => {
    if (/^\/orders\/[0-9a-f-]{36}\/live$/.test(new URL(r.url()).pathname)) streams.push(r);
  });
  let navigations = 0;
  try {
    await ui.placeOrder(page);
    await page.waitForURL(/\/orders\/[0-9a-f-]{36}(\?placed=1)?$/);
    await expect(page.locator('h1')).toHaveText('Your order');
    await page.evaluate(() => { window.__same = 1; });
    page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) navigations += 1; });

    // Not over yet: the page says it follows the order, over SSE.
    await expect(page.locator('#status')).toHaveText(/^(PENDING|RESERVED)$/);
    await expect(page.locator('#order-live')).toHaveAttribute('sse-connect', /\/live$/);
    await expect(page.locator('.progress')).toContainText('follows the order');
    await expect.poll(() => streams.length, { message: 'no event stream was opened' }).toBeGreaterThan(0);
    expect(streams[0].headers()['content-type']).toContain('text/event-stream');
    await expect(page.locator('#status')).toHaveText('RESERVED');
    await payment.waitHeld();
  } finally {
    await payment.release();
  }

  await expect(page.locator('#status')).toHaveText('COMPLETED', { timeout: 20_000 });
  expect(await page.evaluate(() => window.__same), 'the page was reloaded').toBe(1);
  expect(navigations, 'the page navigated').toBe(0);
  await expect(page.locator('#timeline li')).toHaveCount(4); // PENDING, RESERVED, PAID, COMPLETED
  await expect(page.locator('#payment')).toContainText('CAPTURED');
  await expect(page.locator('#tracking-number')).toHaveText(/\S{6,}/);
  await expect(page.locator('#shipment')).toContainText('CREATED');
  await expect(page.locator('#notifications li').first()).toBeVisible();
  await expect(page.locator('#notifications')).toContainText(customer.email);
  await expect(page.locator('.progress')).toHaveCount(0);

  // It is in "My orders", completed. (The header's link: a page that
  // opened before the order existed has no "All my orders" link.)
  const id = ui.orderIdOf(page);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My orders' }).click();
  const row = page.locator('table.orders tbody tr', { has: page.locator(`a[href="/orders/${id}"]`) });
  await expect(row).toContainText('COMPLETED');
});

test('a declined card ends the order CANCELLED, with the reason', async ({ page, request }) => {
  await signedInCustomer(page, request, 'declined');
  await ui.addFromCatalog(page, 'CB-010');
  await ui.goToCheckout(page);
  await ui.fillCheckout(page, { payment_token: 'tok_decline' });
  await ui.placeOrder(page);
  await expect(page).toHaveURL(/\/orders\/[0-9a-f-]{36}(\?placed=1)?$/);
  await expect(page.locator('#status')).toHaveText('CANCELLED', { timeout: 20_000 });
  await expect(page.locator('#reason')).toContainText(/payment failed: .*declined/i);
  await expect(page.locator('#payment')).toContainText('DECLINED');
  await expect(page.locator('#shipment')).toContainText('Not shipped yet.');
  await expect(page.getByRole('button', { name: 'Cancel order' })).toHaveCount(0);
});

test('more than the stock is refused at checkout next to its line, and no order is made', async ({ page, request }) => {
  const admin = await Api.signIn(request, DEMO.admin);
  const scarce = await admin.createProduct({ name: `Last lamps ${unique('n')}`, sku: unique('WT-FEW'), price: 3000, stock: 2 });
  await signedInCustomer(page, request, 'stock');
  await ui.addFromCatalog(page, 'MP-011');
  await ui.addFromProductPage(page, scarce.sku, 3);

  await ui.goToCheckout(page);
  await ui.fillCheckout(page);
  await ui.placeOrder(page);

  await expect(page).toHaveURL(/\/checkout$/);
  await expect(page.locator('h1')).toHaveText('Checkout');
  // The line of the scarce product, by its position in the order's summary.
  const lines = page.locator('ul.lines li.line');
  await expect(lines).toHaveCount(2);
  const names = await lines.allTextContents();
  const i = names.findIndex((t) => t.includes(scarce.name));
  expect(i, `no line for ${scarce.name} in ${names}`).toBeGreaterThanOrEqual(0);
  await expect(page.locator(`#line-${i}`)).toHaveClass(/\binvalid\b/);
  await expect(page.locator(`#line-${i} #err-items-${i}`)).toContainText('only 2 in stock');
  await expect(page.locator(`#err-items-${1 - i}`)).toHaveCount(0);
  await expect(page.locator(`#line-${1 - i}`)).not.toHaveClass(/\binvalid\b/);
  await expect(page.locator('.notice.error[role="alert"]')).toContainText('only 2 in stock');
  // What was typed is kept.
  await expect(page.locator('#f-city')).toHaveValue(ui.CHECKOUT.city);

  // Nothing was ordered, and the cart is as it was.
  await page.goto('/orders');
  await expect(page.locator('main')).toContainText('No orders yet.');
  await page.goto('/cart');
  await expect(page.locator(`tr[data-sku="${scarce.sku}"] input.qty`)).toHaveValue('3');
  await expect(page.locator('tr[data-sku="MP-011"]')).toBeVisible();
});

test('a checkout with mistakes shows each error next to its field', async ({ page, request }) => {
  await signedInCustomer(page, request, 'mistakes');
  await ui.addFromCatalog(page, 'SS-009');
  await ui.goToCheckout(page);
  await ui.fillCheckout(page, { email: 'bad', country: 'F', postal_code: '' });
  await ui.placeOrder(page);

  await expect(page).toHaveURL(/\/checkout$/);
  for (const [field, message] of [
    ['email', /email address/],
    ['country', /ISO 3166-1 alpha-2/],
    ['postal_code', /\S/],
  ]) {
    const input = page.locator(`#f-${field}`);
    const error = page.locator(`p.field-error#err-${field}`);
    await expect(error, `the error of ${field}`).toContainText(message);
    // Next to its field: in the same .field, right after the input (or its hint).
    const box = page.locator('div.field.invalid', { has: input });
    await expect(box.locator(`#err-${field}`)).toHaveCount(1);
    await expect(input).toHaveAttribute('aria-invalid', 'true');
    await expect(input).toHaveAttribute('aria-describedby', new RegExp(`(^| )err-${field}( |$)`));
  }
  // The fields without mistakes carry no error.
  for (const field of ['phone', 'name', 'line1', 'line2', 'city', 'payment_token']) {
    await expect(page.locator(`#f-${field}`)).not.toHaveAttribute('aria-invalid', 'true');
    await expect(page.locator(`#err-${field}`)).toHaveCount(0);
  }
  // What was typed is kept, mistakes included.
  await expect(page.locator('#f-email')).toHaveValue('bad');
  await expect(page.locator('#f-country')).toHaveValue('F');
  await expect(page.locator('#f-line1')).toHaveValue(ui.CHECKOUT.line1);

  await page.goto('/orders');
  await expect(page.locator('main')).toContainText('No orders yet.');
});
