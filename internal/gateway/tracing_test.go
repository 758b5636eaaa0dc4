package gateway_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"shopstream/internal/gateway"
	"shopstream/internal/tracing"
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
// to its command; a malformed one does not pass at all.
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
	if m[0].TraceParent != incoming || m[1].TraceParent != "" || m[2].TraceParent != "" {
		t.Errorf("command traceparents %q, %q, %q: want %q, none, none", m[0].TraceParent, m[1].TraceParent, m[2].TraceParent, incoming)
	}
}
