package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"shopstream/internal/platform/admission"
	"shopstream/internal/platform/command"
)

// Load shedding. An overloaded gateway answers at once with a problem of
// type overloaded and a Retry-After, instead of letting requests queue
// until their clients time out:
//
//   - queries (the read-model routes: GET /products, GET /products/{id},
//     GET /orders/{id}, GET /customers/{id}/orders): at most
//     Limits.MaxQueries run at once on an instance. One more waits at most
//     QueryQueueWait for a slot, then is answered 503 with Retry-After: 1,
//     never left to its deadline or its client's timeout, and never sent
//     to the read model;
//   - event streams: at most Limits.MaxStreams are open at once; one more
//     is answered 503 with Retry-After: 5 at once;
//   - commands: the command bus runs at most --max-inflight at once
//     (command.Shed); one more is answered 429 with Retry-After: 1 at once.
//
// All three use one admission.Gate each, and every shed request counts in
// MetricShed by its class.
const (
	// DefaultMaxQueries is Limits.MaxQueries when unset: the commands'
	// DefaultMaxInFlight, below the MongoDB driver's pool of 100
	// connections, so that an admitted query never waits for a connection.
	DefaultMaxQueries = 64
	// QueryQueueWait is how long a query waits for a slot before it is
	// shed: long enough to ride out a burst, a small share of the query's
	// deadline.
	QueryQueueWait = 100 * time.Millisecond
	// MetricShed counts the requests the gateway shed, labelled class
	// (query, stream, command).
	MetricShed = "shop_http_shed_total"
)

// Classes of shed requests, the class label of MetricShed.
const (
	shedQuery   = "query"
	shedStream  = "stream"
	shedCommand = "command"
)

// Retry-After (seconds) of shed requests: a query or a command is worth
// retrying soon, a stream is long-lived and its slot frees seldom.
const (
	retryShed       = "1"
	retryShedStream = "5"
)

// shedder holds the gateway's bounds on queries and streams and counts
// what they shed.
type shedder struct {
	queries, streams *admission.Gate
	shed             *prometheus.CounterVec
}

// newShedder bounds queries and streams by l (with its defaults), and
// registers MetricShed on reg (nil: counted, but exposed nowhere).
func newShedder(l Limits, reg prometheus.Registerer) *shedder {
	s := &shedder{queries: admission.New(l.MaxQueries), streams: admission.New(l.MaxStreams),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricShed,
			Help: "Requests the HTTP gateway shed (answered 503 or 429 with Retry-After without doing them), by class: query, stream, command.",
		}, []string{"class"})}
	for _, c := range []string{shedQuery, shedStream, shedCommand} {
		s.shed.WithLabelValues(c) // every series from the start, at 0
	}
	if reg != nil {
		reg.MustRegister(s.shed)
	}
	return s
}

// query bounds h, a query route, by the query gate: see Load shedding.
func (g *Gateway) query(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !g.shed.queries.Enter(r.Context(), QueryQueueWait) {
			g.shed.shed.WithLabelValues(shedQuery).Inc()
			writeOverloaded(w, r, http.StatusServiceUnavailable, retryShed,
				fmt.Sprintf("this instance runs at most %d queries at once; retry in a second", g.shed.queries.Cap()))
			return
		}
		defer g.shed.queries.Leave()
		h(w, r)
	}
}

// enterStream takes an event stream's slot; when there is none free it has
// answered 503 and returns false. A true is followed by leaveStream.
func (g *Gateway) enterStream(w http.ResponseWriter, r *http.Request) bool {
	if g.shed.streams.Enter(r.Context(), 0) {
		return true
	}
	g.shed.shed.WithLabelValues(shedStream).Inc()
	writeOverloaded(w, r, http.StatusServiceUnavailable, retryShedStream,
		fmt.Sprintf("this instance streams at most %d event streams at once; retry later", g.shed.streams.Cap()))
	return false
}

func (g *Gateway) leaveStream() { g.shed.streams.Leave() }

// countRefused counts a command the bus shed (command.ErrOverloaded).
func (g *Gateway) countRefused(err error) {
	if errors.Is(err, command.ErrOverloaded) {
		g.shed.shed.WithLabelValues(shedCommand).Inc()
	}
}

// writeOverloaded answers a request the gateway shed: a problem of type
// overloaded, with Retry-After.
func writeOverloaded(w http.ResponseWriter, r *http.Request, status int, retry, detail string) {
	w.Header().Set("Retry-After", retry)
	writeProblem(w, r, status, "overloaded", detail)
}
