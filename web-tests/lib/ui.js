// What a person does in the browser, step by step, through the pages'
// contract (URLs, field names, ids).
'use strict';
const { expect } = require('@playwright/test');

/** Signs in through /login (optionally with ?next=), and waits to be sent on. */
async function signIn(page, { email, password }, next) {
  await page.goto(next ? `/login?next=${encodeURIComponent(next)}` : '/login');
  await page.locator('#f-email').fill(email);
  await page.locator('#f-password').fill(password);
  await Promise.all([
    page.waitForURL((u) => u.pathname !== '/login'),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  await expect(page.locator('.account .who')).toContainText('Signed in as');
}

/** Signs out with the header's button. */
async function signOut(page) {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.locator('.account')).toContainText('Sign in');
}

/** The catalog's card of a product, found with the catalog's search. */
async function findInCatalog(page, sku) {
  await page.goto('/');
  await page.getByRole('searchbox', { name: 'Search products' }).fill(sku);
  await page.getByRole('button', { name: 'Search' }).click();
  await expect(page.locator('h1')).toContainText(sku);
  const card = page.locator(`li.product[data-sku="${sku}"]`);
  await expect(card).toHaveCount(1);
  return card;
}

/** Adds one unit from the catalog (the card's button); lands on the cart. */
async function addFromCatalog(page, sku) {
  const card = await findInCatalog(page, sku);
  // (Its accessible name names the product; found by its form, whatever
  // the wording.)
  await card.locator('form.add button[type="submit"]').click();
  await expect(page).toHaveURL(/\/cart$/);
  await expect(page.locator(`tr[data-sku="${sku}"]`)).toBeVisible();
}

/** Opens the product page from the catalog and adds `quantity`; lands on the cart. */
async function addFromProductPage(page, sku, quantity) {
  const card = await findInCatalog(page, sku);
  await card.locator('h2 a').click();
  await expect(page).toHaveURL(/\/products\//);
  await expect(page.locator('.product-page .sku')).toContainText(sku);
  await page.getByLabel('Quantity').fill(String(quantity));
  await page.locator('.product-page form.add button[type="submit"]').click();
  await expect(page).toHaveURL(/\/cart$/);
  await expect(page.locator(`tr[data-sku="${sku}"]`)).toBeVisible();
}

/** Every checkout field, as a shopper types them. */
const CHECKOUT = {
  email: 'ada@example.com',
  phone: '+4930123456',
  name: 'Ada Lovelace',
  line1: '1 Analytical St',
  line2: 'Flat 2',
  city: 'Berlin',
  postal_code: '10115',
  country: 'DE',
  payment_token: 'tok_visa',
};

/** Fills the checkout form (every field, `overrides` winning). */
async function fillCheckout(page, overrides = {}) {
  const values = { ...CHECKOUT, ...overrides };
  for (const [name, value] of Object.entries(values)) {
    await page.locator(`form.checkout [name="${name}"]`).fill(value);
  }
  return values;
}

/** From the cart to the checkout page. */
async function goToCheckout(page) {
  await page.goto('/cart');
  await page.getByRole('link', { name: 'Checkout' }).click();
  await expect(page).toHaveURL(/\/checkout$/);
  await expect(page.locator('h1')).toHaveText('Checkout');
}

async function placeOrder(page) {
  await page.getByRole('button', { name: 'Place order' }).click();
}

/** The order id of an order page's URL. */
function orderIdOf(page) {
  const m = new URL(page.url()).pathname.match(/^\/(?:console\/)?orders\/([0-9a-f-]{36})$/);
  if (!m) throw new Error(`not an order page: ${page.url()}`);
  return m[1];
}

module.exports = {
  signIn, signOut, findInCatalog, addFromCatalog, addFromProductPage,
  CHECKOUT, fillCheckout, goToCheckout, placeOrder, orderIdOf,
};
