package consumer_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/tracing"
	"shopstream/internal/testinfra/kafkatest"
	"shopstream/internal/testinfra/testenv"
)

// withTraceParent sets rec's traceparent header.
func withTraceParent(rec *kgo.Record, tp string) *kgo.Record {
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: tracing.Header, Value: []byte(tp)})
	return rec
}

// causedBy handles records of this run by noting, per name, the trace
// parent a command they cause would carry.
func causedBy(f *fixture) (consumer func(context.Context, eventlog.Envelope) error, got func(name string) (string, bool)) {
	var mu sync.Mutex
	seen := map[string]string{}
	consumer = func(ctx context.Context, env eventlog.Envelope) error {
		if n := f.name(env); n != "" {
			mu.Lock()
			seen[n] = command.CausedBy(ctx, env.Meta).TraceParent
			mu.Unlock()
		}
		return nil
	}
	got = func(name string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		tp, ok := seen[name]
		return tp, ok
	}
	return consumer, got
}

// With a tracer provider, each record is handled under a consumer span
// whose parent is the span named by the record's traceparent (same trace,
// remote parent), and the commands the handler causes carry that consumer
// span as their trace parent. A record without traceparent starts a trace.
func TestHandlingRunsUnderAConsumerSpanChildOfTheRecord(t *testing.T) {
	kafkatest.ForEachBroker(t, func(t *testing.T, brokers []string) {
		f := setup(t, brokers)
		exp := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		defer func() { _ = tp.Shutdown(context.Background()) }()

		// The producer's span, as another service would have written it.
		_, producer := tp.Tracer("test").Start(context.Background(), "produce")
		producer.End()
		parent := producer.SpanContext()
		traced := f.produce(withTraceParent(f.record(1, "traced"), tracing.TraceParent(trace.ContextWithSpan(context.Background(), producer))))[0]
		f.produce(f.record(1, "untraced"))

		handle, got := causedBy(f)
		cfg := f.config(handle)
		cfg.Tracing = tp
		f.start(cfg)
		testenv.WaitFor(t, 30*time.Second, "both records", func() bool {
			_, a := got("traced")
			_, b := got("untraced")
			return a && b
		})

		var span *tracetest.SpanStub
		for _, s := range exp.GetSpans() {
			if s.SpanKind == trace.SpanKindConsumer && s.Parent.SpanID() == parent.SpanID() {
				span = &s
			}
		}
		if span == nil {
			t.Fatalf("no consumer span whose parent is the record's span %s among %d spans", parent.SpanID(), len(exp.GetSpans()))
		}
		if span.SpanContext.TraceID() != parent.TraceID() || !span.Parent.IsRemote() || span.Name != "process "+topic {
			t.Errorf("consumer span %q trace %s (remote parent %v), want %q in trace %s", span.Name, span.SpanContext.TraceID(),
				span.Parent.IsRemote(), "process "+topic, parent.TraceID())
		}
		attrs := map[string]string{}
		for _, a := range span.Attributes {
			attrs[string(a.Key)] = a.Value.Emit()
		}
		if attrs["messaging.consumer.group.name"] != f.group || attrs["messaging.destination.name"] != topic ||
			attrs["messaging.kafka.offset"] != strconv.FormatInt(traced.Offset, 10) || attrs["shop.event_id"] != f.run+"/traced" {
			t.Errorf("consumer span attributes %v", attrs)
		}
		tp1, _ := got("traced")
		want := tracing.TraceParent(trace.ContextWithSpanContext(context.Background(), span.SpanContext))
		if tp1 != want {
			t.Errorf("a command caused by the traced record carries %q, want the consumer span's %q", tp1, want)
		}
		tp2, _ := got("untraced")
		if tp2 == "" || tp2 == tp1 {
			t.Errorf("a command caused by the untraced record carries %q: want a new trace's span", tp2)
		}
	})
}

// Without a tracer provider nothing is recorded, and a command caused by
// a record carries the record's traceparent unchanged; a record without
// one starts a new trace: its commands carry a valid traceparent, not
// sampled.
func TestWithoutTracingTheTraceParentPassesUnchanged(t *testing.T) {
	brokers := kafkatest.Embedded(t)
	f := setup(t, brokers)
	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	f.produce(withTraceParent(f.record(2, "traced"), incoming), f.record(2, "untraced"))
	handle, got := causedBy(f)
	f.start(f.config(handle))
	testenv.WaitFor(t, 30*time.Second, "both records", func() bool {
		_, a := got("traced")
		_, b := got("untraced")
		return a && b
	})
	if tp, _ := got("traced"); tp != incoming {
		t.Errorf("traced record causes traceparent %q, want %q", tp, incoming)
	}
	if tp, _ := got("untraced"); !regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-00$`).MatchString(tp) || tp[3:35] == incoming[3:35] ||
		strings.HasPrefix(tp, "00-00000000000000000000000000000000-") {
		t.Errorf("untraced record causes traceparent %q, want a new trace's, not sampled", tp)
	}
}
