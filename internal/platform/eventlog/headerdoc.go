package eventlog

// HeaderDoc documents one record header of the event log: the one place its
// meaning is written down. The AsyncAPI document (shop asyncapi, GET
// /asyncapi.json) and the README's header table are generated from
// HeaderDocs; headerdoc_test.go fails when a Header* constant has no entry.
type HeaderDoc struct {
	Name    string
	Meaning string
	// Always is true when Metadata.Headers writes it on every record.
	Always bool
	// Rely is true when a consumer may base decisions on the value, not
	// only log or trace with it.
	Rely bool
}

// HeaderDocs lists every header, in the order Metadata.Headers writes them.
func HeaderDocs() []HeaderDoc {
	return []HeaderDoc{
		{HeaderSpecVersion, "CloudEvents spec version, always \"1.0\".", true, true},
		{HeaderID, "Event id (a UUID), unique per event and the same on every redelivery: deduplicate on it.", true, true},
		{HeaderType, "Event type, the Avro full name of the payload's record (e.g. shop.orders.OrderPlaced); always equal to the record the payload's schema id names.", true, true},
		{HeaderSource, "The bounded context that wrote the event, e.g. shopstream/orders.", true, true},
		{HeaderSubject, "Aggregate id, equal to the record key.", true, true},
		{HeaderTime, "When the event occurred, RFC 3339 with nanoseconds, UTC.", true, true},
		{HeaderAggregateVersion, "Version of the aggregate after this event, from 1, decimal; gapless and increasing per aggregate, so a consumer can drop a duplicate or an older event.", true, true},
		{HeaderCorrelationID, "Id of the request (or run) that started the chain of events this one belongs to; for tracing and logs.", true, false},
		{HeaderCausationID, "Id of the request or event that directly caused this one; for tracing and logs.", true, false},
		{HeaderContentType, "Content type of the value, always " + ContentType + " (Confluent wire format).", true, true},
		{HeaderTraceParent, "W3C trace context of the span that wrote the event (a new trace when the request had none); every event the shop writes has one, records written by other tools may not.", false, false},
	}
}
