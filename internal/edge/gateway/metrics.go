package gateway

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricRequestDuration is the histogram of the gateway's requests, labelled
// route (the pattern that matched, e.g. "GET /products/{id}", or
// "unmatched"; never the raw path, which would make one series per id) and
// code (the status answered).
const MetricRequestDuration = "shop_http_request_duration_seconds"

// routeUnmatched is the route of a request no pattern matches.
const routeUnmatched = "unmatched"

type routeCtxKey struct{}

// withRoute records in the request's context the pattern that will serve
// it, for the middlewares that label by route.
func withRoute(r *http.Request, pattern string) *http.Request {
	if pattern == "" {
		pattern = routeUnmatched
	}
	return r.WithContext(context.WithValue(r.Context(), routeCtxKey{}, pattern))
}

func routeOf(r *http.Request) string {
	if p, ok := r.Context().Value(routeCtxKey{}).(string); ok {
		return p
	}
	return routeUnmatched
}

// withMetrics observes every request's duration, until its handler
// returns (for an event stream: until it ends), in
// MetricRequestDuration, registered with reg. A nil reg measures nothing.
func withMetrics(reg prometheus.Registerer, next http.Handler) http.Handler {
	if reg == nil {
		return next
	}
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricRequestDuration,
		Help:    "Time the HTTP gateway took to answer a request, by route pattern and status code.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "code"})
	reg.MustRegister(duration)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			duration.WithLabelValues(routeOf(r), strconv.Itoa(rec.status())).Observe(time.Since(began).Seconds())
		}()
		next.ServeHTTP(rec, r)
	})
}

// statusRecorder remembers the status a handler answered. It keeps the
// writer a flusher (server-sent events need it) and unwraps for
// http.ResponseController.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

var _ http.Flusher = (*statusRecorder)(nil)

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// status is the status answered: 200 when the handler wrote nothing.
func (s *statusRecorder) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}
