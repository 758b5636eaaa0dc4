package tracing_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"shopstream/internal/platform/tracing"
)

const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestFromEnv(t *testing.T) {
	// The OTLP exporter reads its endpoint from the process environment.
	var exports atomic.Int32
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
			exports.Add(1)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	cases := []struct {
		name    string
		getenv  func(string) string
		enabled bool
		err     string
	}{
		{"unset", env(), false, ""},
		{"none", env("OTEL_TRACES_EXPORTER", "none"), false, ""},
		{"otlp", env("OTEL_TRACES_EXPORTER", "otlp"), true, ""},
		{"otlp in a list", env("OTEL_TRACES_EXPORTER", "none, OTLP"), true, ""},
		{"sdk disabled", env("OTEL_TRACES_EXPORTER", "otlp", "OTEL_SDK_DISABLED", "true"), false, ""},
		{"unsupported exporter", env("OTEL_TRACES_EXPORTER", "zipkin"), false, `exporter "zipkin" is not supported`},
		{"grpc protocol", env("OTEL_TRACES_EXPORTER", "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), false, "only http/protobuf"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := tracing.FromEnv(context.Background(), c.getenv)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one saying %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Enabled != c.enabled {
				t.Fatalf("enabled %v, want %v", p.Enabled, c.enabled)
			}
			// Off or on, a span under a remote parent keeps its trace id.
			ctx, span := p.Tracer("test").Start(tracing.WithRemoteParent(context.Background(), incoming), "work")
			span.End()
			before := exports.Load()
			if err := p.Shutdown(context.Background()); err != nil {
				t.Fatalf("shutdown (flushes the span): %v", err)
			}
			if exported := exports.Load() > before; exported != c.enabled {
				t.Errorf("span exported to the collector: %v, want %v", exported, c.enabled)
			}
			got := tracing.TraceParent(ctx)
			if !c.enabled && got != incoming {
				t.Errorf("tracing off: traceparent %q, want the incoming one unchanged", got)
			}
			if c.enabled && (got[:36] != incoming[:36] || got == incoming) {
				t.Errorf("tracing on: traceparent %q, want the trace of %q with a new span id", got, incoming)
			}
		})
	}
}

func TestParent(t *testing.T) {
	bg := context.Background()
	if got := tracing.Parent(bg, incoming); got != incoming {
		t.Errorf("no span in ctx: %q, want the fallback %q", got, incoming)
	}
	seen := map[string]bool{}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		got := tracing.Parent(bg, bad)
		checkNewTrace(t, got)
		if seen[got[3:35]] {
			t.Errorf("fallback %q: trace id of %q already given", bad, got)
		}
		seen[got[3:35]] = true
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	ctx, span := tp.Tracer("test").Start(tracing.WithRemoteParent(bg, incoming), "work")
	span.End()
	got := tracing.Parent(ctx, incoming)
	if want := tracing.TraceParent(ctx); got != want || !strings.Contains(got, span.SpanContext().SpanID().String()) {
		t.Errorf("span in ctx: %q, want its own %q", got, want)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("span's parent %v, want the remote span 00f067aa0ba902b7", spans)
	}
}

var w3c = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

// checkNewTrace fails unless tp is the traceparent of a new unrecorded
// trace: valid W3C version 00, trace and span ids not zero, not sampled.
func checkNewTrace(t *testing.T, tp string) {
	t.Helper()
	if !w3c.MatchString(tp) {
		t.Fatalf("traceparent %q is not W3C", tp)
	}
	sc := trace.SpanContextFromContext(tracing.WithRemoteParent(context.Background(), tp))
	if !sc.IsValid() || sc.IsSampled() || !strings.HasSuffix(tp, "-00") {
		t.Errorf("traceparent %q: want valid ids, not sampled", tp)
	}
}

func TestNewTraceParent(t *testing.T) {
	a, b := tracing.NewTraceParent(), tracing.NewTraceParent()
	checkNewTrace(t, a)
	checkNewTrace(t, b)
	if a[3:35] == b[3:35] || a[36:52] == b[36:52] {
		t.Errorf("two new traces %q and %q share ids", a, b)
	}
}

// Start with a no-op tracer keeps a valid parent as it is and starts a new
// unrecorded trace without one; with a recording tracer it is the tracer's
// span, a root one (sampled) without a parent.
func TestStart(t *testing.T) {
	bg := context.Background()
	off := noop.NewTracerProvider().Tracer("test")
	ctx, span := tracing.Start(tracing.WithRemoteParent(bg, incoming), off, "work")
	span.End()
	if got := tracing.TraceParent(ctx); got != incoming {
		t.Errorf("off, under %q: %q, want it unchanged", incoming, got)
	}
	for _, parent := range []string{"", "00-garbage"} {
		ctx, span := tracing.Start(tracing.WithRemoteParent(bg, parent), off, "work")
		span.End()
		got := tracing.TraceParent(ctx)
		checkNewTrace(t, got)
		if span.SpanContext().TraceID().String() != got[3:35] {
			t.Errorf("off, parent %q: span %v is not the trace of %q", parent, span.SpanContext(), got)
		}
		// Work under it keeps that trace.
		ctx2, span2 := tracing.Start(ctx, off, "more")
		span2.End()
		if got2 := tracing.TraceParent(ctx2); got2 != got {
			t.Errorf("off: a span under %q is %q, want the same", got, got2)
		}
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(bg) }()
	ctx, span = tracing.Start(bg, tp.Tracer("test"), "work")
	span.End()
	got := tracing.TraceParent(ctx)
	if !w3c.MatchString(got) || !strings.HasSuffix(got, "-01") || len(exp.GetSpans()) != 1 ||
		exp.GetSpans()[0].SpanContext.SpanID() != span.SpanContext().SpanID() || exp.GetSpans()[0].Parent.IsValid() {
		t.Errorf("on, no parent: traceparent %q, spans %v: want the recorded root span's, sampled", got, exp.GetSpans())
	}
}
