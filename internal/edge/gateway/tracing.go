package gateway

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"shopstream/internal/platform/tracing"
)

// withTracing runs every request under a server span named by its route,
// child of the request's traceparent. The commands it dispatches carry
// that span as the trace parent of their events (see meta). With a nil or
// no-op tp nothing is recorded and a valid incoming traceparent passes on
// unchanged. A request without a valid traceparent starts a new trace,
// tracing on or off (tracing.Start): a recorded root span when tp records,
// else an unrecorded root span context, not sampled; either way its events
// carry a valid traceparent.
func withTracing(tp trace.TracerProvider, next http.Handler) http.Handler {
	tracer := tracing.OrNoop(tp).Tracer("shopstream/internal/edge/gateway")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := routeOf(r)
		name, path := r.Method, ""
		if route != routeUnmatched {
			name = route
			_, path, _ = strings.Cut(route, " ")
		}
		ctx := tracing.WithRemoteParent(r.Context(), r.Header.Get(tracing.Header))
		ctx, span := tracing.Start(ctx, tracer, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("http.route", path),
			attribute.String("url.path", r.URL.Path),
		))
		defer span.End()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(ctx))
		span.SetAttributes(attribute.Int("http.response.status_code", rec.status()))
		if rec.status() >= 500 {
			span.SetStatus(codes.Error, http.StatusText(rec.status()))
		}
	})
}
