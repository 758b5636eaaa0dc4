// Package tracing carries W3C trace context (the traceparent header)
// through the shop with OpenTelemetry: from an HTTP request to the events
// its command writes, and from a consumed record to the events its handler
// writes, so that every event a request causes, however many processors
// away, carries the request's trace id.
//
// Guarantees:
//   - The propagator is W3C TraceContext only (traceparent; tracestate is
//     not kept in the event log).
//   - With tracing off (a no-op provider) nothing is recorded, but trace
//     ids still survive every hop: a span started under a remote parent is
//     that parent, so [TraceParent] gives back the incoming traceparent
//     unchanged. With tracing on, a span is a child of the incoming one:
//     same trace id, new span id.
//   - Every event carries a valid traceparent (version 00). Work that has
//     no valid trace context of its own (a request without a traceparent
//     or with a malformed one, a record without one, a command run outside
//     a request or a handler) starts a new trace, tracing on or off: with
//     tracing on the SDK starts a root span (sampled as its sampler says);
//     with tracing off [Start] and [Parent] make a root span context of a
//     random 16-byte trace id and 8-byte span id, not sampled (flags 00:
//     nothing was recorded); a command whose metadata carries no
//     traceparent at all (run outside a request or a handler, e.g. by a
//     test or a seeding tool) gets one [NewTraceParent] for all the events
//     it writes (internal/platform/aggregate). Effects of that work then share its
//     trace id like any other.
package tracing

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Header is the W3C trace context header, on HTTP requests and records.
const Header = "traceparent"

// ServiceName is the default service.name of the shop's spans
// (OTEL_SERVICE_NAME overrides it).
const ServiceName = "shopstream"

// Provider is a tracer provider and how to stop it.
type Provider struct {
	trace.TracerProvider
	// Enabled is whether spans are exported.
	Enabled bool
	// Shutdown flushes the spans not yet exported and stops the exporter;
	// a no-op when tracing is off.
	Shutdown func(context.Context) error
}

// FromEnv builds the tracer provider the standard OpenTelemetry
// environment asks for:
//
//   - OTEL_TRACES_EXPORTER: "otlp" exports spans over OTLP/HTTP (protobuf);
//     unset, "" or "none" turn tracing off (a no-op provider that still
//     propagates). Any other exporter is an error.
//   - OTEL_SDK_DISABLED=true turns tracing off whatever the exporter.
//   - OTEL_EXPORTER_OTLP_PROTOCOL, if set, must be "http/protobuf".
//
// The exporter reads its own variables (OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, …_HEADERS, …_TIMEOUT, …) and the SDK
// its sampler (OTEL_TRACES_SAMPLER, default parent-based always-on), batch
// (OTEL_BSP_*) and resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES)
// variables from the process environment. attrs are added to the
// resource, under service.name ServiceName by default.
func FromEnv(ctx context.Context, getenv func(string) string, attrs ...attribute.KeyValue) (*Provider, error) {
	off := &Provider{TracerProvider: noop.NewTracerProvider(), Shutdown: func(context.Context) error { return nil }}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return off, nil
	}
	otlp := false
	for _, e := range strings.Split(getenv("OTEL_TRACES_EXPORTER"), ",") {
		switch e = strings.ToLower(strings.TrimSpace(e)); e {
		case "", "none":
		case "otlp":
			otlp = true
		default:
			return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: exporter %q is not supported (otlp or none)", getenv("OTEL_TRACES_EXPORTER"), e)
		}
	}
	if !otlp {
		return off, nil
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := strings.TrimSpace(getenv(k)); p != "" && p != "http/protobuf" {
			return nil, fmt.Errorf("%s=%q: only http/protobuf is supported", k, p)
		}
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(append([]attribute.KeyValue{attribute.String("service.name", ServiceName)}, attrs...)...),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // last: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, errors.Join(fmt.Errorf("trace resource: %w", err), exp.Shutdown(ctx))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Provider{TracerProvider: tp, Enabled: true, Shutdown: tp.Shutdown}, nil
}

// OrNoop is tp, or a no-op provider (which still propagates) when tp is nil.
func OrNoop(tp trace.TracerProvider) trace.TracerProvider {
	if tp == nil {
		return noop.NewTracerProvider()
	}
	return tp
}

// Propagator is the propagator of the shop: W3C TraceContext.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// WithRemoteParent returns ctx carrying the remote span context that
// traceparent names, so that a span started from it is its child; ctx
// as it is when traceparent is empty or malformed.
func WithRemoteParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return Propagator().Extract(ctx, propagation.MapCarrier{Header: traceparent})
}

// TraceParent is the W3C traceparent of ctx's span, "" when ctx carries no
// valid span context.
func TraceParent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	Propagator().Inject(ctx, c)
	return c[Header]
}

// Parent is the traceparent the effects of work done under ctx carry:
// ctx's span's, or when ctx carries none (work not started through this
// package, e.g. a handler a test calls directly) fallback if it is a valid
// traceparent, else a new trace's ([NewTraceParent]): never "".
func Parent(ctx context.Context, fallback string) string {
	if tp := TraceParent(ctx); tp != "" {
		return tp
	}
	if tp := TraceParent(WithRemoteParent(context.Background(), fallback)); tp != "" {
		return tp
	}
	return NewTraceParent()
}

// NewRoot is the span context of a new trace that nothing records: a
// random trace id and span id (never all zeros), not sampled.
func NewRoot() trace.SpanContext {
	var tid trace.TraceID
	var sid trace.SpanID
	for !tid.IsValid() {
		_, _ = rand.Read(tid[:]) // crypto/rand.Read never fails
	}
	for !sid.IsValid() {
		_, _ = rand.Read(sid[:])
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})
}

// NewTraceParent is the traceparent of a new trace that nothing records
// ([NewRoot]): "00-<32 hex>-<16 hex>-00".
func NewTraceParent() string {
	return TraceParent(trace.ContextWithSpanContext(context.Background(), NewRoot()))
}

// Start starts a span with tracer like tracer.Start, and makes sure the
// context it returns carries a valid span context: when the tracer gave
// none (a no-op tracer and no valid parent in ctx), the span is a new
// trace's root that nothing records ([NewRoot]), so the work's effects
// still carry a traceparent. The caller ends the span.
func Start(ctx context.Context, tracer trace.Tracer, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx, span := tracer.Start(ctx, name, opts...)
	if span.SpanContext().IsValid() {
		return ctx, span
	}
	span.End()
	ctx = trace.ContextWithSpanContext(ctx, NewRoot())
	return ctx, trace.SpanFromContext(ctx)
}

// StartConsumer starts the span of handling rec in a consumer group: a
// consumer span named "process <topic>", child of the record's
// traceparent header (a new trace without a valid one, tracing on or off:
// see [Start]), with the OpenTelemetry messaging attributes. The caller
// ends it.
func StartConsumer(ctx context.Context, tracer trace.Tracer, group string, rec *kgo.Record) (context.Context, trace.Span) {
	for _, h := range rec.Headers {
		if h.Key == Header {
			ctx = WithRemoteParent(ctx, string(h.Value))
			break
		}
	}
	ctx, span := Start(ctx, tracer, "process "+rec.Topic, trace.WithSpanKind(trace.SpanKindConsumer))
	if span.IsRecording() { // built only for a span that keeps them: a rebuild folds records by the hundred thousand
		span.SetAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", rec.Topic),
			attribute.String("messaging.consumer.group.name", group),
			attribute.String("messaging.destination.partition.id", strconv.Itoa(int(rec.Partition))),
			attribute.Int64("messaging.kafka.offset", rec.Offset),
			attribute.String("messaging.kafka.message.key", string(rec.Key)),
		)
	}
	return ctx, span
}

// End ends span, recording err (if any) as its error status.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
