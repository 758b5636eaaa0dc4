// Validates an AsyncAPI document with the AsyncAPI project's own parser,
// Avro payloads included, and prints every diagnostic. Exits 1 when one has
// severity error, 2 on bad usage.
//
// @asyncapi/avro-schema-parser is registered with the parser, which then
// converts every application/vnd.apache.avro payload (multi-format schema)
// to JSON Schema. For AsyncAPI 3 the parser (3.x) does not call the schema
// parser's validate, so this script does: every Avro payload, and every
// older version under x-shop-versions, goes through the Avro parser's own
// validate (avsc), and a failure is an error diagnostic.
//
//   npm ci && node validate.mjs asyncapi.json
import { readFile } from 'node:fs/promises';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';
import { AvroSchemaParser } from '@asyncapi/avro-schema-parser';

const file = process.argv[2];
if (!file) {
  console.error('usage: node validate.mjs <asyncapi.json>');
  process.exit(2);
}
const parser = new Parser();
const avro = AvroSchemaParser();
parser.registerSchemaParser(avro);

const text = await readFile(file, 'utf8');
const { document, diagnostics } = await parser.parse(text, { source: file });

// The Avro schemas, validated by the Avro schema parser itself.
const isAvro = (format) => typeof format === 'string' && avro.getMimeTypes().includes(format);
const raw = JSON.parse(text);
let avroChecked = 0;
const checkAvro = async (data, path) => {
  avroChecked++;
  for (const d of await avro.validate({ data, path })) {
    diagnostics.push({ severity: DiagnosticSeverity.Error, code: 'avro-schema', message: d.message, path: d.path ?? path });
  }
};
for (const [id, m] of Object.entries(raw.components?.messages ?? {})) {
  const p = m.payload;
  if (p && isAvro(p.schemaFormat)) {
    await checkAvro(p.schema, ['components', 'messages', id, 'payload', 'schema']);
  }
  for (const [i, v] of (m['x-shop-versions'] ?? []).entries()) {
    await checkAvro(v.schema, ['components', 'messages', id, 'x-shop-versions', String(i), 'schema']);
  }
}

const names = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};
const count = { error: 0, warning: 0, info: 0, hint: 0 };
for (const d of diagnostics) {
  const severity = names[d.severity] ?? String(d.severity);
  count[severity] = (count[severity] ?? 0) + 1;
  const where = d.path && d.path.length ? d.path.join('.') : '(document)';
  console.log(`${severity}: ${d.code}: ${d.message} at ${where}`);
}
if (document) {
  const n = (c) => c.all().length;
  // An Avro payload the parser converted is a JSON Schema object now.
  const converted = document.allMessages().all()
    .filter((m) => isAvro(m.schemaFormat()) && m.payload()?.type() === 'object').length;
  console.log(`parsed ${file}: asyncapi ${document.version()}, ${n(document.channels())} channels, ` +
    `${n(document.allMessages())} messages (${converted} Avro payloads converted by the parser, ` +
    `${avroChecked} Avro schemas validated), ${n(document.operations())} operations, ${n(document.servers())} servers`);
}
console.log(`diagnostics: ${count.error} errors, ${count.warning} warnings, ${count.info} infos, ${count.hint} hints`);
process.exit(count.error > 0 || !document ? 1 : 0);
