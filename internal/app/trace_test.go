package app_test

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"shopstream/internal/app"
	"shopstream/internal/platform/eventlog"
	"shopstream/processors/saga"
	"shopstream/projectors/orderviews"
	"shopstream/schemas"
)

// The events one POST /orders causes, hop after hop: gateway → saga →
// payments → saga → billing → email.
var orderChain = []string{
	"shop.orders.OrderPlaced", "shop.inventory.StockReserved", "shop.payments.PaymentRequested",
	"shop.payments.PaymentSucceeded", "shop.orders.OrderConfirmed", "shop.billing.InvoiceIssued",
	"shop.notifications.EmailRequested", "shop.notifications.EmailSent",
}

// tracedEvent is an event of the log with its trace context.
type tracedEvent struct {
	typ         string
	traceparent string
}

// eventsOf reads the order chain's topics from the start until every type
// of want has an event of the request whose correlation id is corr, and
// returns the request's events, in log order per topic.
func eventsOf(t *testing.T, brokers []string, corr string, want []string) []tracedEvent {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ConsumeTopics(schemas.TopicOrders, schemas.TopicStock, schemas.TopicPayments, schemas.TopicInvoices, schemas.TopicEmails))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []tracedEvent
	seen := map[string]bool{}
	for ctx.Err() == nil && len(seen) < len(want) {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			m, err := eventlog.ParseMetadata(r)
			if err != nil || m.CorrelationID != corr {
				return
			}
			out = append(out, tracedEvent{typ: m.Type, traceparent: m.TraceParent})
			if slices.Contains(want, m.Type) {
				seen[m.Type] = true
			}
		})
	}
	for _, typ := range want {
		if !seen[typ] {
			t.Fatalf("no %s of request %s in the log after 20 s; found %v", typ, corr, out)
		}
	}
	return out
}

// placeTracedOrder places a card order with traceparent (none when ""), waits until it
// is confirmed and emailed and returns its correlation id.
func placeTracedOrder(t *testing.T, s *shop, traceparent string) string {
	t.Helper()
	pool := s.pool()
	customer, product := s.customer(), s.product(pool, 3)
	var headers []string
	if traceparent != "" { // "": the request sends no traceparent header at all
		headers = []string{"traceparent", traceparent}
	}
	code, h, body := s.do(http.MethodPost, "/orders", "application/json",
		`{"customer_id": "`+customer+`", "payment_method": "card", "items": [{"product_id": "`+product+`", "quantity": 1}]}`,
		headers...)
	if code != http.StatusAccepted {
		t.Fatalf("POST /orders: %d %s", code, body)
	}
	placed := decodeBody(t, body)
	s.waitOrder(placed["id"].(string), 20*time.Second, func(o map[string]any) bool {
		inv, _ := o["invoice"].(map[string]any)
		return o["status"] == "confirmed" && inv != nil && inv["emailed_at"] != nil
	})
	return h.Get("X-Correlation-ID")
}

// parseTraceParent splits a version-00 traceparent.
func parseTraceParent(t *testing.T, tp string) (trace.TraceID, trace.SpanID) {
	t.Helper()
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[0] != "00" {
		t.Fatalf("malformed traceparent %q", tp)
	}
	tid, err := trace.TraceIDFromHex(parts[1])
	if err != nil {
		t.Fatalf("traceparent %q: %v", tp, err)
	}
	sid, err := trace.SpanIDFromHex(parts[2])
	if err != nil {
		t.Fatalf("traceparent %q: %v", tp, err)
	}
	return tid, sid
}

const (
	incomingTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	incomingSpanID  = "00f067aa0ba902b7"
	incoming        = "00-" + incomingTraceID + "-" + incomingSpanID + "-01"
)

// With tracing off (no OTEL_TRACES_EXPORTER), the traceparent a request
// sends reaches every event it causes, hop after hop, unchanged.
func TestTraceParentSurvivesEveryHopWithTracingOff(t *testing.T) {
	s := startShop(t, t.TempDir(), func(c *app.Config) {
		c.Getenv = func(string) string { return "" } // whatever this process's environment says
	})
	corr := placeTracedOrder(t, s, incoming)
	for _, ev := range eventsOf(t, s.stack.Endpoints.Brokers, corr, orderChain) {
		if ev.traceparent != incoming {
			t.Errorf("%s carries traceparent %q, want the request's %q", ev.typ, ev.traceparent, incoming)
		}
	}
}

// With tracing on, every event a request causes carries its trace id, and
// the span that wrote it as parent: the gateway's server span (a child of
// the request's traceparent) for OrderPlaced, then each processor's
// consumer span, a child of the span that wrote the record it handles.
// The projectors' spans are children of the records they fold.
func TestTraceParentSurvivesEveryHopWithTracingOn(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := startShop(t, t.TempDir(), func(c *app.Config) { c.Tracing = tp })
	corr := placeTracedOrder(t, s, incoming)
	events := eventsOf(t, s.stack.Endpoints.Brokers, corr, orderChain)

	spans := map[trace.SpanID]tracetest.SpanStub{}
	var ours []tracetest.SpanStub
	for _, sp := range exp.GetSpans() {
		spans[sp.SpanContext.SpanID()] = sp
		if sp.SpanContext.TraceID().String() == incomingTraceID {
			ours = append(ours, sp)
		}
	}
	var server *tracetest.SpanStub
	for i, sp := range ours {
		if sp.SpanKind == trace.SpanKindServer && sp.Name == "POST /orders" {
			server = &ours[i]
		}
	}
	if server == nil || server.Parent.SpanID().String() != incomingSpanID || !server.Parent.IsRemote() {
		t.Fatalf("no server span POST /orders child of the request's span %s: %+v", incomingSpanID, server)
	}
	writer := map[string]tracetest.SpanStub{} // event type → the span that wrote it
	for _, ev := range events {
		tid, sid := parseTraceParent(t, ev.traceparent)
		if tid.String() != incomingTraceID {
			t.Errorf("%s carries trace id %s, want the request's %s", ev.typ, tid, incomingTraceID)
			continue
		}
		sp, ok := spans[sid]
		if !ok {
			t.Errorf("%s carries span %s, which no exported span has", ev.typ, sid)
			continue
		}
		writer[ev.typ] = sp
	}
	if w := writer["shop.orders.OrderPlaced"]; w.SpanContext.SpanID() != server.SpanContext.SpanID() {
		t.Errorf("OrderPlaced written under span %q, want the server span", w.Name)
	}
	// Every later event was written under a consumer span whose parent is
	// the span that wrote an earlier event of the chain.
	written := map[trace.SpanID]bool{}
	for _, sp := range writer {
		written[sp.SpanContext.SpanID()] = true
	}
	for _, typ := range orderChain[1:] {
		w := writer[typ]
		if w.SpanKind != trace.SpanKindConsumer || !written[w.Parent.SpanID()] {
			t.Errorf("%s written under span %q (kind %v, parent %s): want a consumer span, child of the span of an earlier event",
				typ, w.Name, w.SpanKind, w.Parent.SpanID())
		}
	}
	// The saga's and the orders projector's spans of OrderPlaced are
	// children of the server span.
	for _, group := range []string{saga.Group, orderviews.Projection().Group()} {
		found := false
		for _, sp := range ours {
			for _, a := range sp.Attributes {
				if a.Key == "messaging.consumer.group.name" && a.Value.AsString() == group && sp.Parent.SpanID() == server.SpanContext.SpanID() {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("no span of group %s child of the server span", group)
		}
	}
}

var w3cTraceParent = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

// With tracing off, a request that sends no traceparent starts a trace of
// its own: every event of the chain it causes carries a valid W3C
// traceparent, all of the same (non-zero) trace id, not sampled.
func TestTraceParentStartsWithARequestWithoutOne(t *testing.T) {
	s := startShop(t, t.TempDir(), func(c *app.Config) {
		c.Getenv = func(string) string { return "" } // tracing off, whatever this process's environment says
	})
	corr := placeTracedOrder(t, s, "")
	events := eventsOf(t, s.stack.Endpoints.Brokers, corr, orderChain)
	var traceID trace.TraceID
	for _, ev := range events {
		if !w3cTraceParent.MatchString(ev.traceparent) {
			t.Errorf("%s carries traceparent %q, want a valid W3C one", ev.typ, ev.traceparent)
			continue
		}
		tid, _ := parseTraceParent(t, ev.traceparent)
		if !tid.IsValid() {
			t.Errorf("%s carries the all-zero trace id: %q", ev.typ, ev.traceparent)
		}
		if !traceID.IsValid() {
			traceID = tid
		}
		if tid != traceID {
			t.Errorf("%s carries trace id %s, want the chain's %s", ev.typ, tid, traceID)
		}
		if !strings.HasSuffix(ev.traceparent, "-00") {
			t.Errorf("%s carries traceparent %q: with tracing off nothing is sampled", ev.typ, ev.traceparent)
		}
	}
	if len(events) < len(orderChain) {
		t.Errorf("%d events, want at least the %d of the chain", len(events), len(orderChain))
	}
}
