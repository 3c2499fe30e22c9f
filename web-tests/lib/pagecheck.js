// What every page is checked for besides its content: accessibility (axe),
// the Content-Security-Policy (nothing refused), scripts that fail, and how
// long it took to load.
'use strict';
const AxeBuilder = require('@axe-core/playwright').default;

/**
 * Starts watching `page` (before its first navigation): CSP violations as
 * the console reports them and as `securitypolicyviolation` events, and
 * uncaught script errors. Returns the lists, which grow as pages load.
 */
async function watch(page) {
  const seen = { csp: [], errors: [] };
  page.on('console', (message) => {
    const text = message.text();
    if (/Content[- ]Security[- ]Policy/i.test(text)) seen.csp.push(`${page.url()}: console ${message.type()}: ${text}`);
  });
  page.on('pageerror', (error) => seen.errors.push(`${page.url()}: ${error.message}`));
  await page.exposeBinding('__agoraCspViolation', ({ frame }, v) => {
    seen.csp.push(`${frame.url()}: securitypolicyviolation: ${v.directive} refused ${v.blocked} (${v.source})`);
  });
  // Playwright's init scripts are not page scripts: the page's CSP does not apply to them.
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__agoraCspViolation({
        directive: e.violatedDirective,
        blocked: e.blockedURI || 'inline',
        source: `${e.sourceFile || ''}:${e.lineNumber || ''}`,
      });
    });
  });
  return seen;
}

/** The serious and critical axe violations of the page as it is now, as lines of text. */
async function axeProblems(page, name) {
  const results = await new AxeBuilder({ page }).analyze();
  const lines = [];
  for (const v of results.violations) {
    if (!['serious', 'critical'].includes(v.impact)) continue;
    for (const node of v.nodes) {
      lines.push(`${name}: [${v.impact}] ${v.id} (${v.help}) at ${node.target.join(' ')}: ${node.failureSummary.replace(/\s+/g, ' ')}`);
    }
  }
  return lines;
}

/** The page's load, from the navigation timing: server answer and load event, in ms. */
async function timing(page) {
  return page.evaluate(() => {
    const [n] = performance.getEntriesByType('navigation');
    return {
      ttfb: Math.round(n.responseStart - n.requestStart),
      load: Math.round(n.loadEventEnd - n.startTime),
      bytes: n.transferSize,
    };
  });
}

module.exports = { watch, axeProblems, timing };
