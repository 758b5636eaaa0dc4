// Package schemas is the contract of the shop's event log: the Avro schemas
// (.avsc files under avro/, embedded in the binary), the topic each event type
// belongs to, the Go type of each event, and the upcasters that lift an old
// version of an event to the current one.
//
// Events are written and read by two paths that give the same result:
//
//   - The typed path (Version.Encode, Version.Decode): github.com/hamba/avro
//     encodes the Go struct by its `avro` tags and decodes into a new one,
//     with no generic value in between. It writes the current version, and
//     reads records of the current version and of the older versions that
//     Avro schema resolution (current schema as reader) reads as their
//     upcasters do, which a type declares. Its bytes are the schema's Avro
//     binary encoding, identical to goavro's (TestTypedPathAndGoavroAgree).
//   - The generic path (Catalog.Native, Version.Codec, Type.Upcast,
//     Type.ToEvent, Version.DecodeGeneric): goavro with the writer's schema,
//     the upcaster chain (v1 → v2 → … → current) on the generic value, and
//     only then the Go type. It reads every older version that is not
//     declared resolvable, records the typed path refuses beyond hamba's own
//     limits, and the generic values tools write with old versions.
//
// A writer schema is identified as a known version by its canonical form
// (Catalog.Identify). A Catalog refuses at construction any event type whose
// versions are not all present, parseable and distinct, or whose chain of
// upcasters has a gap, so a missing step fails at start, not at read; Load
// also refuses a typed path that does not build.
package schemas
