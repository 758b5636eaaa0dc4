package eventlog

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/schemas"
)

// Header names, after the CloudEvents Kafka protocol binding (binary mode:
// the ce_ attributes and content-type as the event's datacontenttype) and
// W3C trace context. What each means, and whether a consumer may rely on
// it, is in [HeaderDocs].
const (
	HeaderSpecVersion      = "ce_specversion"
	HeaderID               = "ce_id"
	HeaderType             = "ce_type"
	HeaderSource           = "ce_source"
	HeaderSubject          = "ce_subject" // aggregate id
	HeaderTime             = "ce_time"
	HeaderAggregateVersion = "ce_aggregateversion"
	HeaderCorrelationID    = "ce_correlationid"
	HeaderCausationID      = "ce_causationid"
	HeaderContentType      = "content-type"
	HeaderTraceParent      = "traceparent"
)

// ContentType is the content type of every event-log record.
const ContentType = "application/avro"

// Metadata travels with every event, in the record's headers. The record key
// is the aggregate id.
type Metadata struct {
	EventID          string
	Type             string // Avro full name of the event
	Source           string // the context that wrote it, e.g. "shopstream/catalog"
	AggregateID      string
	AggregateVersion int64 // version of the aggregate after this event, from 1
	OccurredAt       time.Time
	CorrelationID    string // the request that started the chain
	CausationID      string // the event or request that caused this one
	TraceParent      string // W3C traceparent; every event the shop writes has one (see internal/platform/tracing), Headers omits it when empty
}

// Headers renders metadata as record headers.
func (m Metadata) Headers() []kgo.RecordHeader {
	h := []kgo.RecordHeader{
		{Key: HeaderSpecVersion, Value: []byte("1.0")},
		{Key: HeaderID, Value: []byte(m.EventID)},
		{Key: HeaderType, Value: []byte(m.Type)},
		{Key: HeaderSource, Value: []byte(m.Source)},
		{Key: HeaderSubject, Value: []byte(m.AggregateID)},
		{Key: HeaderTime, Value: []byte(m.OccurredAt.UTC().Format(time.RFC3339Nano))},
		{Key: HeaderAggregateVersion, Value: []byte(strconv.FormatInt(m.AggregateVersion, 10))},
		{Key: HeaderCorrelationID, Value: []byte(m.CorrelationID)},
		{Key: HeaderCausationID, Value: []byte(m.CausationID)},
		{Key: HeaderContentType, Value: []byte(ContentType)},
	}
	if m.TraceParent != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderTraceParent, Value: []byte(m.TraceParent)})
	}
	return h
}

// ParseMetadata reads metadata from a record's headers. A record without an
// event id, a type or a valid time and version is poison.
func ParseMetadata(r *kgo.Record) (Metadata, error) {
	get := func(k string) string {
		for _, h := range r.Headers {
			if h.Key == k {
				return string(h.Value)
			}
		}
		return ""
	}
	m := Metadata{
		EventID:       get(HeaderID),
		Type:          get(HeaderType),
		Source:        get(HeaderSource),
		AggregateID:   get(HeaderSubject),
		CorrelationID: get(HeaderCorrelationID),
		CausationID:   get(HeaderCausationID),
		TraceParent:   get(HeaderTraceParent),
	}
	if m.AggregateID == "" {
		m.AggregateID = string(r.Key)
	}
	if m.EventID == "" || m.Type == "" {
		return m, fmt.Errorf("%w: headers %s and %s are required", ErrPoison, HeaderID, HeaderType)
	}
	var err error
	if m.OccurredAt, err = time.Parse(time.RFC3339Nano, get(HeaderTime)); err != nil {
		return m, fmt.Errorf("%w: header %s: %v", ErrPoison, HeaderTime, err)
	}
	if m.AggregateVersion, err = strconv.ParseInt(get(HeaderAggregateVersion), 10, 64); err != nil {
		return m, fmt.Errorf("%w: header %s: %v", ErrPoison, HeaderAggregateVersion, err)
	}
	return m, nil
}

// Envelope is one event of the log with its metadata and position.
type Envelope struct {
	Topic     string
	Partition int32
	Offset    int64
	Meta      Metadata
	Event     schemas.Event
	Writer    *schemas.Version // the version the record was written with
}

// Read decodes a consumed record: metadata from headers, event from value.
// The type header must match the decoded event.
func (s *Serde) Read(ctx context.Context, r *kgo.Record) (Envelope, error) {
	env := Envelope{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	var err error
	if env.Meta, err = ParseMetadata(r); err != nil {
		return env, err
	}
	if env.Event, env.Writer, err = s.Decode(ctx, r.Topic, r.Value); err != nil {
		return env, err
	}
	if env.Event.EventType() != env.Meta.Type {
		return env, fmt.Errorf("%w: header type %s, payload %s", ErrPoison, env.Meta.Type, env.Event.EventType())
	}
	return env, nil
}
