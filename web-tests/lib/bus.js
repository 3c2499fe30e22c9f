// The tests' hands on the event transport, for arranging what the API
// cannot: a dead letter to replay, and a consumer that does not see one
// kind of event for a while (as if that service were slow or down), so that
// a page can be watched while the saga waits.
//
// embedded: the app's bus.db (scripts/embedded-bus.py: rows, a trigger);
// distributed: the run's RabbitMQ queues (amqplib).
'use strict';
const { execFileSync } = require('child_process');
const path = require('path');
const amqp = require('amqplib');
const env = require('./env');
const { until, uuidv7 } = require('./api');

function bus(dataDir, args, input) {
  return execFileSync('python3', [env.busScript, args[0], path.join(dataDir, 'bus.db'), ...args.slice(1)], {
    input,
    encoding: 'utf8',
    timeout: 20_000,
  }).trim();
}

/**
 * A CloudEvents envelope of a `PaymentSucceeded` (payment.succeeded.v1) for
 * `order` and its captured `payment`, with a fresh event id: the payload
 * decodes, and the order service ignores it for an order that has moved on.
 */
function paymentSucceeded(order, payment) {
  const trace = require('crypto').randomBytes(24).toString('hex');
  return {
    specversion: '1.0',
    id: uuidv7(),
    type: 'PaymentSucceeded',
    source: '/agora/payment',
    subject: order.id,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    dataschema: `${env.url}/schemas/events/payment.succeeded.v1.json`,
    eventversion: 1,
    correlationid: uuidv7(),
    traceparent: `00-${trace.slice(0, 32)}-${trace.slice(32, 48)}-01`,
    data: { order_id: order.id, payment_id: payment.id, amount: payment.amount },
  };
}

/**
 * Puts `envelope` in `service`'s dead letters, failed with `error` after
 * `attempts` attempts, as its consumer would have left it.
 */
async function injectDeadLetter({ service, routingKey, envelope, error, attempts = 8 }) {
  const body = JSON.stringify(envelope);
  if (env.embedded) {
    bus(env.dataDir, ['dead-letter', service, envelope.id, routingKey, String(attempts), error], body);
    return;
  }
  const connection = await amqp.connect(env.amqpUrl);
  try {
    const channel = await connection.createConfirmChannel();
    const queue = `${env.amqpPrefix}${service}.dlq`;
    await channel.checkQueue(queue); // the consumer declared it; a typo fails here
    channel.sendToQueue(queue, Buffer.from(body), {
      persistent: true,
      contentType: 'application/cloudevents+json',
      messageId: envelope.id,
      headers: {
        'x-agora-error': error,
        'x-agora-original-routing-key': routingKey,
        // A 64-bit integer, as the consumer writes it.
        'x-agora-attempts': { '!': 'long', value: attempts },
        'x-agora-failed-at': new Date().toISOString(),
      },
    });
    await channel.waitForConfirms();
    await channel.close();
  } finally {
    await connection.close();
  }
}

/**
 * Holds the deliveries of `routingKey` to `service`'s consumer whose
 * envelope contains `needle`, until `release()`: that consumer does not see
 * them meanwhile (the saga waits, as when a service is slow).
 *
 * embedded: a hold in `dataDir`'s bus.db (a row the running app honours, and
 * a trigger for its queue) parks exactly those, never due.
 * distributed: a consumer of the test's own, with a higher priority than the
 * service's, takes every message of the service's queue and keeps it
 * unacknowledged; `release()` closes its channel, which gives them all back
 * to the queue, in order, for the service. (The tests run one at a time, so
 * what it takes besides is nobody else's.) Should the test never call
 * `release()` (it timed out), the hold ends by itself after `maxMs`.
 */
async function hold({ service, routingKey, needle, dataDir = env.dataDir, name, maxMs = 90_000 }) {
  const label = name || `${service}_${Date.now()}`;
  if (env.embedded) {
    const args = [label, service, routingKey, needle];
    bus(dataDir, ['hold', ...args]);
    let released = false;
    return {
      count: async () => Number(bus(dataDir, ['held', ...args])),
      async waitHeld(timeout = 15_000) {
        await until(`a ${routingKey} held from ${service}`, async () => (await this.count()) > 0, { timeout });
      },
      async release() {
        if (released) return 0;
        released = true;
        return Number(bus(dataDir, ['release', ...args]));
      },
    };
  }
  const connection = await amqp.connect(env.amqpUrl);
  connection.on('error', () => {}); // a closed connection is the end of the hold, nothing more
  const channel = await connection.createChannel();
  await channel.prefetch(10_000);
  const held = [];
  await channel.consume(`${env.amqpPrefix}${service}`, (m) => m && held.push(m), {
    noAck: false,
    priority: 100,
  });
  let released = false;
  const release = async () => {
    if (released) return 0;
    released = true;
    clearTimeout(timer);
    const n = held.length;
    await channel.close(); // unacknowledged: back to the queue
    await connection.close();
    return n;
  };
  const timer = setTimeout(() => release().catch(() => {}), maxMs);
  timer.unref();
  return {
    count: async () =>
      held.filter((m) => m.fields.routingKey === routingKey && m.content.toString().includes(needle)).length,
    async waitHeld(timeout = 15_000) {
      await until(`a ${routingKey} held from ${service}`, async () => (await this.count()) > 0, { timeout });
    },
    release,
  };
}

module.exports = { injectDeadLetter, paymentSucceeded, hold };
