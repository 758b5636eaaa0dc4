// Package layout states how the tree is layered, and its test holds the
// code to it. It has no code of its own.
//
// Imports run one way, down. From the bottom:
//
//	schemas/               the event contract: Avro schemas, topics, policy
//	internal/platform/     libraries that know no context: the command
//	                       contract (Meta, command errors, the bus), the
//	                       event log serde, the aggregate store, outbox,
//	                       idempotency, document store, PostgreSQL,
//	                       tracing, metrics, lag, group settings, admission
//	producers/             the write-side contexts (decide, fold, store)
//	projectors/            the read models (folds and their runner)
//	processors/            the reactions: saga, stock feed, charging,
//	                       invoicing, email (they call producers)
//	internal/edge/         the HTTP edge: gateway, stock watch, event streams, console
//	internal/app/          the component wiring of one process
//	internal/devinfra/     the embedded infrastructure of shop dev and tests
//	internal/testinfra/    test helpers (backends, brokers, serdes, env)
//	internal/tools/        the load-test tool
//	cmd/                   the shop binary
//
// A package may import packages of its own layer and of the layers its
// rule lists (see allowed in layout_test.go); nothing below internal/app
// imports dev infrastructure, test infrastructure or tools. No package name
// is taken twice, so no import needs an alias.
package layout
