package tracing_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"shopstream/internal/tracing"
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
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		if got := tracing.Parent(bg, bad); got != "" {
			t.Errorf("fallback %q is no traceparent: got %q, want none", bad, got)
		}
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
