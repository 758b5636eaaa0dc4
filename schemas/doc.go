// Package schemas is the contract of the shop's event log: the Avro schemas
// (.avsc files under avro/, embedded in the binary), the topic each event type
// belongs to, the Go type of each event, and the upcasters that lift an old
// version of an event to the current one.
//
// goavro has no reader/writer schema resolution, so reading is always:
// decode with the writer's schema, identify which known version it is, run
// the upcaster chain (v1 → v2 → … → current) on the generic value, and only
// then convert to the Go type. A Catalog refuses at construction any event
// type whose versions are not all present, parseable and distinct, or whose
// chain of upcasters has a gap, so a missing step fails at start, not at read.
package schemas
