#!/usr/bin/env node
// Deletes the RabbitMQ topology one distributed run made under its own
// AGORA_AMQP_PREFIX: the named queues and the prefix's two exchanges
// (<prefix>events, <prefix>dead-letters), as the Rust tests' delete_topology
// does. Deleting what does not exist is not an error.
//
//   node scripts/amqp-cleanup.js AMQP_URL PREFIX [QUEUE...]
'use strict';
const amqp = require('amqplib');

async function main() {
  const [url, prefix, ...queues] = process.argv.slice(2);
  if (!url || !prefix) {
    console.error('usage: amqp-cleanup.js AMQP_URL PREFIX [QUEUE...]');
    process.exit(2);
  }
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createChannel();
    for (const queue of queues) {
      if (!queue.startsWith(prefix)) throw new Error(`${queue} is not under ${prefix}`);
      await channel.deleteQueue(queue);
    }
    for (const exchange of [`${prefix}events`, `${prefix}dead-letters`]) {
      await channel.deleteExchange(exchange);
    }
    await channel.close();
  } finally {
    await connection.close();
  }
  console.log(`removed ${queues.length} queues and 2 exchanges under ${prefix}`);
}

main().catch((e) => {
  console.error(`amqp-cleanup: ${e.message}`);
  process.exit(1);
});
