// The screenshots of docs/screenshots/, taken only when asked for:
//
//   AGORA_SCREENSHOTS=1 web-tests/run.sh embedded tests/screenshots.spec.js
const fs = require('fs');
const path = require('path');
const { test, expect } = require('@playwright/test');
const env = require('../lib/env');
const { Api, DEMO, newCustomer } = require('../lib/api');
const ui = require('../lib/ui');

const DIR = path.join(env.repo, 'docs', 'screenshots');
const MAX_BYTES = 250 * 1024;

test.use({ viewport: { width: 1280, height: 900 } });

async function shoot(page, name) {
  const file = path.join(DIR, name);
  await page.screenshot({ path: file, fullPage: false, animations: 'disabled', caret: 'hide' });
  const bytes = fs.statSync(file).size;
  expect(bytes, `${name} is ${bytes} bytes`).toBeLessThan(MAX_BYTES);
  console.log(`wrote docs/screenshots/${name} (${Math.round(bytes / 1024)} KB)`);
}

test('screenshots for the docs', async ({ page, request }) => {
  test.skip(!env.screenshots, 'only with AGORA_SCREENSHOTS=1');
  test.setTimeout(90_000);
  fs.mkdirSync(DIR, { recursive: true });
  const customer = newCustomer('docs');
  const shopper = await Api.register(request, customer);

  // The storefront, as a signed-in shopper sees it.
  await ui.signIn(page, customer);
  await page.goto('/');
  await expect(page.locator('li.product')).toHaveCount(12);
  await shoot(page, 'storefront.png');

  // A completed order, reached through the checkout.
  await ui.addFromCatalog(page, 'KB-001');
  await ui.addFromCatalog(page, 'MS-002');
  await ui.goToCheckout(page);
  await ui.fillCheckout(page, { email: customer.email });
  await ui.placeOrder(page);
  await expect(page.locator('#status')).toHaveText('COMPLETED', { timeout: 20_000 });
  const id = ui.orderIdOf(page);
  await page.goto(`/orders/${id}`); // the page as it is when opened later
  await expect(page.locator('#tracking-number')).toBeVisible();
  await shoot(page, 'order.png');

  // The dashboard while orders come in: the charts get a few readings.
  await ui.signOut(page);
  await ui.signIn(page, DEMO.operator, '/console');
  const products = [1, 2, 3, 5, 8, 9, 10, 11].map((n) => `00000000-0000-7000-8000-${n.toString(16).padStart(12, '0')}`);
  const end = Date.now() + 9_000;
  for (let i = 0; Date.now() < end; i++) {
    const token = i % 7 === 6 ? 'tok_decline' : 'tok_visa';
    await shopper.placeOrder([{ product_id: products[i % products.length], quantity: 1 + (i % 2) }], { token });
    await page.waitForTimeout(150 + (i % 5) * 60);
  }
  await page.waitForResponse((r) => r.url().endsWith('/console/live') && r.ok());
  await page.waitForTimeout(300);
  await shoot(page, 'console.png');

  // One order's journey across the services.
  await page.goto(`/console/orders/${id}`);
  await expect(page.locator('#journey tr[data-event-type="OrderCompleted"]')).toHaveCount(1);
  await page.evaluate(() => document.getElementById('journey-h').scrollIntoView({ block: 'start' }));
  await shoot(page, 'console-order.png');
});
