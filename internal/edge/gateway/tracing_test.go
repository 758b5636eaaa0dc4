package gateway_test

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"shopstream/internal/edge/gateway"
	"shopstream/internal/platform/tracing"
)

const (
	incomingSpan = "00f067aa0ba902b7"
	incoming     = "00-4bf92f3577b34da6a3ce929d0e0e4736-" + incomingSpan + "-01"
)

// A request runs under a server span named by its route, child of its
// traceparent; the command it dispatches carries that span as parent.
func TestRequestRunsUnderAServerSpanChildOfItsTraceParent(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	bus, metas := signUps()
	g := gateway.New(gateway.Deps{Logger: slog.New(slog.DiscardHandler), Commands: bus, Tracing: tp})
	if code := serve(t, g, "POST", "/customers", signUpBody, "traceparent", incoming); code != 201 {
		t.Fatalf("POST /customers: %d", code)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want the request's server span", len(spans))
	}
	s := spans[0]
	if s.Name != "POST /customers" || s.SpanKind != trace.SpanKindServer || s.Parent.SpanID().String() != incomingSpan ||
		!s.Parent.IsRemote() || s.SpanContext.TraceID() != s.Parent.TraceID() {
		t.Errorf("span %q kind %v parent %v: want server span POST /customers, child of the remote %s", s.Name, s.SpanKind, s.Parent, incomingSpan)
	}
	attrs := map[string]string{}
	for _, a := range s.Attributes {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs["http.route"] != "/customers" || attrs["http.response.status_code"] != "201" || attrs["http.request.method"] != "POST" {
		t.Errorf("span attributes %v", attrs)
	}
	want := tracing.TraceParent(trace.ContextWithSpanContext(context.Background(), s.SpanContext))
	if m := metas(); len(m) != 1 || m[0].TraceParent != want {
		t.Errorf("command metadata %+v, want traceparent %s", m, want)
	}
}

// Without a tracer provider the request's traceparent passes on unchanged
// to its command; a request with a malformed one or none starts a new
// trace: a valid W3C traceparent, not sampled, a trace id of its own.
func TestWithoutTracingTheRequestTraceParentPassesUnchanged(t *testing.T) {
	bus, metas := signUps()
	g := gateway.New(gateway.Deps{Logger: slog.New(slog.DiscardHandler), Commands: bus})
	for _, tp := range []string{incoming, "00-nonsense", ""} {
		if code := serve(t, g, "POST", "/customers", strings.Replace(signUpBody, "zizou", "z"+tp, 1), "traceparent", tp); code != 201 {
			t.Fatalf("POST /customers: %d", code)
		}
	}
	m := metas()
	if len(m) != 3 {
		t.Fatalf("%d commands, want 3", len(m))
	}
	if m[0].TraceParent != incoming {
		t.Errorf("command traceparent %q, want the request's %q", m[0].TraceParent, incoming)
	}
	for i, sent := range []string{"00-nonsense", ""} {
		got := m[i+1].TraceParent
		if !w3c.MatchString(got) || strings.HasPrefix(got, "00-00000000000000000000000000000000-") || !strings.HasSuffix(got, "-00") {
			t.Errorf("request with traceparent %q: command traceparent %q, want a new valid one, not sampled", sent, got)
		}
	}
	if m[1].TraceParent[:35] == m[2].TraceParent[:35] {
		t.Errorf("two requests without a traceparent share the trace of %q", m[1].TraceParent)
	}
}

var w3c = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

// With tracing on, a request without a traceparent runs under a root
// server span, and its command carries that span (sampled).
func TestWithTracingARequestWithoutTraceParentStartsATrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	bus, metas := signUps()
	g := gateway.New(gateway.Deps{Logger: slog.New(slog.DiscardHandler), Commands: bus, Tracing: tp})
	if code := serve(t, g, "POST", "/customers", signUpBody); code != 201 {
		t.Fatalf("POST /customers: %d", code)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Parent.IsValid() {
		t.Fatalf("spans %v, want one root server span", spans)
	}
	want := tracing.TraceParent(trace.ContextWithSpanContext(context.Background(), spans[0].SpanContext))
	if m := metas(); len(m) != 1 || m[0].TraceParent != want || !w3c.MatchString(want) || !strings.HasSuffix(want, "-01") {
		t.Errorf("command metadata %+v, want traceparent %s (sampled)", m, want)
	}
}
