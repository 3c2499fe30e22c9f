// GraphiQL at /graphql, in a real browser: it starts from the binary's own
// assets under the page's strict policy (nothing refused, no script error,
// no request to another origin), runs a query with the Headers tab's
// token, and a subscription pushes a stock level over the WebSocket.
const { test, expect } = require('@playwright/test');
const { watch } = require('../lib/pagecheck');

const KEYBOARD = '00000000-0000-7000-8000-000000000001';

/** Replaces the text of GraphiQL's editor `selector`, as a paste would. */
async function setEditor(page, selector, text) {
  await page.locator(`${selector} .CodeMirror`).first().click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
  // GraphiQL parses the editor's text after a pause in typing (its
  // operation, and whether it is a subscription, come from that parse).
  await page.waitForTimeout(700);
}

test('GraphiQL runs a query and a subscription from the binary alone', async ({ page, baseURL }) => {
  const seen = await watch(page);
  const foreign = [];
  page.on('request', (r) => {
    const url = new URL(r.url());
    if (url.origin !== new URL(baseURL).origin && !url.protocol.startsWith('data')) foreign.push(r.url());
  });

  await page.goto('/graphql');
  await expect(page.locator('.graphiql-container')).toBeVisible();

  await setEditor(page, '.graphiql-query-editor', `{ product(id: "${KEYBOARD}") { sku stock { available } } }`);
  await page.locator('.graphiql-execute-button').click();
  await expect(page.locator('.graphiql-response')).toContainText('"sku": "KB-001"');

  await setEditor(page, '.graphiql-query-editor', `subscription { stockLevel(productId: "${KEYBOARD}") { available } }`);
  await page.locator('.graphiql-execute-button').click();
  await expect(page.locator('.graphiql-response')).toContainText('"available"');

  expect(seen.csp, 'the policy refused something').toEqual([]);
  expect(seen.errors, 'a script failed').toEqual([]);
  expect(foreign, 'requests to another origin').toEqual([]);
});
