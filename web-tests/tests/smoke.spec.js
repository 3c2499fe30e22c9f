// The browser reaches the system under test: the harness works end to end.
// (The UI pages come later; /health is there in both modes.)
const { test, expect } = require('@playwright/test');

test('the browser opens /health and the system answers ok', async ({ page }) => {
  const response = await page.goto('/health');
  expect(response, 'no response for /health').not.toBeNull();
  expect(response.status()).toBe(200);
  expect(response.headers()['content-type']).toContain('application/json');
  expect(await response.json()).toEqual({ status: 'ok' });
  // The browser rendered what it got, too.
  await expect(page.locator('body')).toContainText('"status"');
});

test('the system says it is ready', async ({ request }) => {
  const response = await request.get('/ready');
  expect(response.status()).toBe(200);
  expect((await response.json()).status).toBe('ready');
});
