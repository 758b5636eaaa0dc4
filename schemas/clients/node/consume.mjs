#!/usr/bin/env node
// Read the shop's topics with kafkajs and @kafkajs/confluent-schema-registry.
//
// Every record is Avro in the Confluent wire format (magic byte, schema id,
// body), so registry.decode at its defaults decodes it with the writer's
// schema, fetched from the registry by id. The CloudEvents metadata is in
// the record headers (ce_type, ce_id, ce_subject, ...).
//
// Reads each topic from the beginning (or from --since-ms) up to the end
// offsets seen at start, prints `topic records=N decoded=N failed=N` per
// topic and a JSON summary; exits 1 if a record failed or a topic was empty.
//
//   npm ci
//   node consume.mjs --brokers 127.0.0.1:9092 --registry-url http://127.0.0.1:8081
//
// On a broker with SASL_SSL (SCRAM-SHA-512 over TLS), as the shop's CI
// broker and compose have: --sasl-user NAME --ca-file CA.pem, the password in
// the environment variable KAFKA_PASSWORD (never on the command line).
import { parseArgs } from 'node:util'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import kafkajs from 'kafkajs'
import SnappyCodec from 'kafkajs-snappy'
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry'

const { CompressionCodecs, CompressionTypes, Kafka, logLevel } = kafkajs

// The shop's producers (franz-go) compress batches with Snappy, whose codec
// kafkajs leaves to a plugin.
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec

// The event-log topics, as in schemas/topics.go.
const SHOP_TOPICS = [
  'shop.customers.v1', 'shop.catalog.products.v1', 'shop.inventory.stock.v1',
  'shop.carts.v1', 'shop.orders.v1', 'shop.payments.v1',
  'shop.payments.sepa-requests.v1', 'shop.billing.invoices.v1',
  'shop.notifications.emails.v1', 'shop.reviews.v1',
]

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    brokers: { type: 'string', default: '127.0.0.1:9092' },
    'registry-url': { type: 'string', default: 'http://127.0.0.1:8081' },
    'since-ms': { type: 'string' }, // start at this timestamp (ms since the epoch), not the beginning
    'sasl-user': { type: 'string' }, // SASL SCRAM-SHA-512 user (password: $KAFKA_PASSWORD); connects over TLS
    'ca-file': { type: 'string' }, // PEM file of the CA of the brokers' certificates (with --sasl-user)
  },
})
const topics = positionals.length ? positionals : SHOP_TOPICS

// Library defaults: decode looks the writer's schema up by the id in each record.
const registry = new SchemaRegistry({ host: opts['registry-url'] })
const secure = opts['sasl-user'] === undefined ? {} : {
  ssl: opts['ca-file'] === undefined ? true : { ca: [readFileSync(opts['ca-file'], 'utf8')] },
  sasl: { mechanism: 'scram-sha-512', username: opts['sasl-user'], password: process.env.KAFKA_PASSWORD ?? '' },
}
const kafka = new Kafka({ brokers: opts.brokers.split(','), logLevel: logLevel.WARN, ...secure })

// Where to start and stop in each partition: [start, end) with end the high
// watermark now, start the offset of the first record at or after
// --since-ms (none: end), or the low watermark.
const admin = kafka.admin()
await admin.connect()
const start = new Map(), end = new Map()
for (const topic of topics) {
  for (const p of await admin.fetchTopicOffsets(topic)) {
    start.set(`${topic}/${p.partition}`, Number(p.low))
    end.set(`${topic}/${p.partition}`, Number(p.high))
  }
  if (opts['since-ms'] !== undefined) {
    for (const p of await admin.fetchTopicOffsetsByTimestamp(topic, Number(opts['since-ms']))) {
      start.set(`${topic}/${p.partition}`, Number(p.offset))
    }
  }
}
await admin.disconnect()
const pending = new Set([...start.keys()].filter(k => start.get(k) < end.get(k)))

const counts = Object.fromEntries(topics.map(t => [t, { records: 0, decoded: 0, failed: 0 }]))
const shown = new Set()
if (pending.size > 0) {
  // A fresh group that commits nothing: every partition is sought to its start.
  const consumer = kafka.consumer({ groupId: `shop-clients-node-${randomUUID()}` })
  await consumer.connect()
  await consumer.subscribe({ topics })
  let finished
  const done = new Promise(resolve => { finished = resolve })
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (!payload.restart) { console.error(`consume: ${payload.error.message}`); process.exit(1) }
  })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }) => {
      const key = `${topic}/${partition}`, offset = Number(message.offset)
      if (!pending.has(key) || offset < start.get(key)) return
      if (offset >= end.get(key)) { // written after we started
        pending.delete(key)
      } else {
        const c = counts[topic]
        c.records++
        try {
          const event = await registry.decode(message.value)
          c.decoded++
          if (!shown.has(topic)) { // show one event a topic, so you see it works
            shown.add(topic)
            const fields = Object.fromEntries(Object.entries(event).slice(0, 3))
            console.log(`${topic}: ce_type=${message.headers.ce_type} ${JSON.stringify(fields)}`)
          }
        } catch (e) {
          c.failed++
          if (c.failed <= 3) console.error(`${key}@${offset}: ${e.message}`) // the first few failures of a topic
        }
        if (offset + 1 >= end.get(key)) pending.delete(key)
      }
      if (pending.size === 0) finished()
    },
  })
  for (const [key, offset] of start) {
    const i = key.lastIndexOf('/')
    consumer.seek({ topic: key.slice(0, i), partition: Number(key.slice(i + 1)), offset: String(offset) })
  }
  await done
  await consumer.disconnect()
}

for (const [topic, c] of Object.entries(counts)) {
  console.log(`${topic} records=${c.records} decoded=${c.decoded} failed=${c.failed}`)
}
const ok = Object.values(counts).every(c => c.records > 0 && c.failed === 0)
console.log(JSON.stringify({ client: 'node kafkajs', ok, topics: counts }))
process.exit(ok ? 0 : 1)
