// What run.sh tells the tests about the system it started.
'use strict';
const path = require('path');

const mode = process.env.AGORA_MODE || '';

module.exports = {
  mode,
  embedded: mode === 'embedded',
  distributed: mode === 'distributed',
  url: process.env.AGORA_URL,
  /** embedded: the main app's SQLite files (bus.db among them). */
  dataDir: process.env.AGORA_DATA_DIR || '',
  /**
   * A system whose saga steps time out after `slowStepSecs`: embedded, a
   * second app (its SQLite files in `slowDataDir`); distributed, the
   * deployment itself.
   */
  slowUrl: process.env.AGORA_SLOW_URL || '',
  slowStepSecs: Number(process.env.AGORA_SLOW_STEP_SECS || 0),
  slowDataDir: process.env.AGORA_SLOW_DATA_DIR || '',
  /** distributed: the broker and this run's queue prefix. */
  amqpUrl: process.env.AGORA_AMQP_URL || '',
  amqpPrefix: process.env.AGORA_AMQP_PREFIX || '',
  screenshots: process.env.AGORA_SCREENSHOTS === '1',
  repo: path.resolve(__dirname, '..', '..'),
  busScript: path.resolve(__dirname, '..', 'scripts', 'embedded-bus.py'),
};

if (!['embedded', 'distributed'].includes(mode)) {
  // Run through run.sh, which sets it (and starts the system).
  throw new Error(`AGORA_MODE is "${mode}": run the tests with web-tests/run.sh embedded|distributed`);
}
