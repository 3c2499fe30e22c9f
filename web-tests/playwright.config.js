// Playwright drives Debian's Chromium (apt-get install chromium), never a
// browser of its own: install with PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1.
// AGORA_URL is the running system's base URL; run.sh starts one and sets it.
// @ts-check
const { defineConfig } = require('@playwright/test');

module.exports = defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: 'list',
  outputDir: './test-results',
  use: {
    baseURL: process.env.AGORA_URL,
    headless: true,
    screenshot: 'off',
    trace: 'off',
    video: 'off',
    actionTimeout: 15_000,
    navigationTimeout: 30_000,
    launchOptions: {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    },
  },
  projects: [{ name: 'chromium', use: { browserName: 'chromium' } }],
});
