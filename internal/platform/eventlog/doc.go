// Package eventlog reads and writes records of the shop's event log: Avro
// payloads in the Confluent wire format (magic byte 0, 4-byte big-endian
// schema id, Avro binary) with schemas registered in a schema registry under
// TopicRecordNameStrategy subjects ("<topic>-<record full name>"), so that
// several event types share one topic; and event metadata in record headers
// following the CloudEvents Kafka binding (binary mode), which consumers in
// any language already know how to read.
//
// Reading always goes writer schema → known version → upcasters → current Go
// type (see package schemas). Errors that no retry can fix (bad framing, a
// schema id the registry does not know, a schema of no known version, an
// event on the wrong topic) wrap ErrPoison; callers send those records to a
// dead-letter topic. Any other error (registry unreachable) is transient.
package eventlog
