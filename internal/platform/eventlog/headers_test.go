package eventlog_test

import (
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/eventlog"
)

var (
	rfc3339     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$`)
	traceParent = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)
)

// A rendered Metadata is a CloudEvent in the Kafka protocol binding's
// binary mode: the required attributes ce_specversion ("1.0"), ce_id,
// ce_source (a URI-reference) and ce_type are present and non-empty, the
// optional ce_time is RFC 3339, content-type names the data's content
// type, every attribute header is ce_ + a lower-case alphanumeric name,
// no header repeats, and the traceparent is W3C's.
func TestHeadersAreACloudEventInBinaryMode(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	m := eventlog.Metadata{
		EventID: "0193a0c4-7d2e-7c3b-9f4e-2a1b3c4d5e6f", Type: "shop.orders.OrderPlaced", Source: "shopstream/orders",
		AggregateID: "order-1", AggregateVersion: 3, OccurredAt: time.Date(2026, 12, 3, 15, 4, 5, 123456789, paris),
		CorrelationID: "c", CausationID: "d", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	hs := m.Headers()
	got := map[string]string{}
	for _, h := range hs {
		if _, dup := got[h.Key]; dup {
			t.Errorf("header %s written twice", h.Key)
		}
		got[h.Key] = string(h.Value)
	}
	attr := regexp.MustCompile(`^ce_[a-z0-9]{1,20}$`)
	for k := range got {
		if k != eventlog.HeaderContentType && k != eventlog.HeaderTraceParent && !attr.MatchString(k) {
			t.Errorf("header %s: a CloudEvents attribute header is ce_ + a lower-case alphanumeric name", k)
		}
	}
	for _, k := range []string{eventlog.HeaderSpecVersion, eventlog.HeaderID, eventlog.HeaderSource, eventlog.HeaderType, eventlog.HeaderTime, eventlog.HeaderContentType} {
		if got[k] == "" {
			t.Errorf("required header %s missing or empty (headers %v)", k, got)
		}
	}
	if v := got[eventlog.HeaderSpecVersion]; v != "1.0" {
		t.Errorf("%s = %q, want 1.0", eventlog.HeaderSpecVersion, v)
	}
	if v := got[eventlog.HeaderID]; v != m.EventID {
		t.Errorf("%s = %q, want %q", eventlog.HeaderID, v, m.EventID)
	}
	if v := got[eventlog.HeaderType]; v != m.Type {
		t.Errorf("%s = %q, want %q", eventlog.HeaderType, v, m.Type)
	}
	if v := got[eventlog.HeaderSource]; v != m.Source {
		t.Errorf("%s = %q, want %q", eventlog.HeaderSource, v, m.Source)
	} else if _, err := url.Parse(v); err != nil {
		t.Errorf("%s = %q is no URI-reference: %v", eventlog.HeaderSource, v, err)
	}
	if v := got[eventlog.HeaderSubject]; v != m.AggregateID {
		t.Errorf("%s = %q, want the aggregate id %q", eventlog.HeaderSubject, v, m.AggregateID)
	}
	ts := got[eventlog.HeaderTime]
	if !rfc3339.MatchString(ts) {
		t.Errorf("%s = %q is not RFC 3339", eventlog.HeaderTime, ts)
	}
	if at, err := time.Parse(time.RFC3339Nano, ts); err != nil || !at.Equal(m.OccurredAt) || at.Location() != time.UTC {
		t.Errorf("%s = %q: parsed %v (%v), want %v in UTC", eventlog.HeaderTime, ts, at, err, m.OccurredAt)
	}
	if v := got[eventlog.HeaderContentType]; v != eventlog.ContentType {
		t.Errorf("%s = %q, want %q", eventlog.HeaderContentType, v, eventlog.ContentType)
	}
	if v := got[eventlog.HeaderAggregateVersion]; v != "3" {
		t.Errorf("%s = %q, want 3", eventlog.HeaderAggregateVersion, v)
	}
	if v := got[eventlog.HeaderTraceParent]; !traceParent.MatchString(v) {
		t.Errorf("%s = %q is no W3C traceparent", eventlog.HeaderTraceParent, v)
	}
	// And it reads back as it was written.
	back, err := eventlog.ParseMetadata(&kgo.Record{Key: []byte(m.AggregateID), Headers: hs})
	if err != nil {
		t.Fatal(err)
	}
	if want := m; !back.OccurredAt.Equal(want.OccurredAt) {
		t.Errorf("time read back %v, want %v", back.OccurredAt, want.OccurredAt)
	} else {
		back.OccurredAt, want.OccurredAt = time.Time{}, time.Time{}
		if back != want {
			t.Errorf("read back %+v, want %+v", back, want)
		}
	}
}
