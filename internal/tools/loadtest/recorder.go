package loadtest

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"shopstream/internal/tools/loadtest/report"
)

// Recorder counts every answer by route and by second of the load, with
// its latency. It is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	start   time.Time
	seconds []map[string]*bucket // by second since start
	routes  map[string]*bucket   // the whole run
	started []int64              // requests sent, by second since start
	late    int64
}

// bucket is the answers of one route in one second, or over the run.
type bucket struct {
	// shed is every 429 and every 503 with Retry-After: the shop shedding
	// load or telling a dependency is down, as it should; errors are
	// the other 5xx (a 503 without Retry-After among them) and requests
	// without an answer.
	ok, shed, refused, errors int64
	latencies                 []float64 // ms
	// The kinds of errors and sheds, counted apart for the ramp's spike
	// (s503: every 503, with Retry-After or not).
	s429, s503, s500, other5xx, timeouts, transport, noRetryAfter int64
}

// answer is how a request ended: its status (0: no answer), whether the
// client gave up waiting, whether a shed came with Retry-After.
type answer struct {
	status     int
	timeout    bool
	retryAfter bool
}

func (b *bucket) add(a answer, ms float64) {
	switch st := a.status; {
	case st/100 == 2:
		b.ok++
	case st == 429:
		b.shed++
		b.s429++
	case st/100 == 4:
		b.refused++
	case st == 503:
		b.s503++
		if a.retryAfter {
			b.shed++
		} else {
			b.errors++
		}
	default: // other 5xx, or 0: no answer
		b.errors++
		switch {
		case st == 500:
			b.s500++
		case st >= 500:
			b.other5xx++
		case a.timeout:
			b.timeouts++
		default:
			b.transport++
		}
	}
	if (a.status == 429 || a.status == 503) && !a.retryAfter {
		b.noRetryAfter++
	}
	b.latencies = append(b.latencies, ms)
}

func (b *bucket) count() int64 { return int64(len(b.latencies)) }

// NewRecorder returns a recorder whose second 0 starts at start.
func NewRecorder(start time.Time) *Recorder {
	return &Recorder{start: start, routes: map[string]*bucket{}}
}

// Record counts one answer of route (status 0: no answer) to a request
// sent at began. Requests sent before the start (the setup) are not part
// of the load and are not counted.
func (r *Recorder) Record(route string, began time.Time, took time.Duration, status int) {
	r.record(route, began, took, answer{status: status, retryAfter: true})
}

func (r *Recorder) record(route string, began time.Time, took time.Duration, a answer) {
	if began.Before(r.start) {
		return
	}
	sec := int(began.Sub(r.start) / time.Second)
	ms := float64(took.Microseconds()) / 1000
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.seconds) <= sec {
		r.seconds = append(r.seconds, map[string]*bucket{})
	}
	for _, m := range []map[string]*bucket{r.seconds[sec], r.routes} {
		b := m[route]
		if b == nil {
			b = &bucket{}
			m[route] = b
		}
		b.add(a, ms)
	}
}

// Started counts a request sent at began, before its answer.
func (r *Recorder) Started(began time.Time) {
	if began.Before(r.start) {
		return
	}
	sec := int(began.Sub(r.start) / time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.started) <= sec {
		r.started = append(r.started, 0)
	}
	r.started[sec]++
}

// Late counts a request that started more than a second after it was due
// (the generator fell behind).
func (r *Recorder) Late() {
	r.mu.Lock()
	r.late++
	r.mu.Unlock()
}

// Live is what the last complete second looked like, for the progress
// line: the requests sent in it, and the answers to them so far (Shed:
// 429s and 503s with Retry-After).
type Live struct {
	Sent, Answered, OK, Shed, Refused, Errors int64
	P95                                       float64
	Routes                                    map[string]RouteLive
}

// RouteLive is one route's answers in one second.
type RouteLive struct {
	Count, Shed int64
	P95         float64
}

// Second sums second sec over every route.
func (r *Recorder) Second(sec int) Live {
	r.mu.Lock()
	defer r.mu.Unlock()
	var l Live
	if sec >= 0 && sec < len(r.started) {
		l.Sent = r.started[sec]
	}
	if sec < 0 || sec >= len(r.seconds) {
		return l
	}
	var all []float64
	l.Routes = map[string]RouteLive{}
	for route, b := range r.seconds[sec] {
		l.Routes[route] = RouteLive{Count: b.count(), Shed: b.shed, P95: percentile(b.latencies, 95)}
		l.Answered += b.count()
		l.OK += b.ok
		l.Shed += b.shed
		l.Refused += b.refused
		l.Errors += b.errors
		all = append(all, b.latencies...)
	}
	l.P95 = percentile(all, 95)
	return l
}

// Fill writes the per-second and per-route figures and the totals into rep;
// rate gives each second's target rate.
func (r *Recorder) Fill(rep *report.Report, seconds int, rate func(sec int) float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for sec := range max(seconds, len(r.seconds)) {
		s := report.Second{T: sec, TargetRPS: rate(sec), Routes: map[string]report.RouteSecond{}}
		if sec < len(r.seconds) {
			for route, b := range r.seconds[sec] {
				s.Routes[route] = report.RouteSecond{Count: b.count(), Errors: b.errors, Shed: b.shed,
					P50: percentile(b.latencies, 50), P95: percentile(b.latencies, 95), P99: percentile(b.latencies, 99)}
			}
		}
		rep.Seconds = append(rep.Seconds, s)
	}
	routes := make([]string, 0, len(r.routes))
	for route := range r.routes {
		routes = append(routes, route)
	}
	sort.Strings(routes)
	t := &rep.Totals
	var all []float64
	for _, route := range routes {
		b := r.routes[route]
		rep.Routes = append(rep.Routes, report.RouteSummary{Route: route, Count: b.count(), OK: b.ok, Shed: b.shed, Refused: b.refused, Errors: b.errors,
			P50: percentile(b.latencies, 50), P95: percentile(b.latencies, 95), P99: percentile(b.latencies, 99), Max: percentile(b.latencies, 100)})
		t.Requests += b.count()
		t.OK += b.ok
		t.Shed += b.shed
		t.Refused += b.refused
		t.Errors += b.errors
		all = append(all, b.latencies...)
	}
	t.P50, t.P95, t.P99 = percentile(all, 50), percentile(all, 95), percentile(all, 99)
	t.Late = r.late
}

// percentile is the p-th percentile (nearest rank) of ms, 0 when empty. It
// sorts a copy.
func percentile(ms []float64, p float64) float64 {
	if len(ms) == 0 {
		return 0
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// window is the answers to the requests sent in seconds [from, to) of
// the load, summed over the routes: what a ramp step or the spike did.
type window struct {
	answers        report.Answers
	acceptedOrders int64 // POST /orders answered 2xx
	commands       int64 // every POST answered 2xx
	commandsSent   int64 // every POST answered, whatever the answer
	answered       int64
	all, orders    []float64 // latencies, ms
}

// Window sums seconds [from, to) over every route.
func (r *Recorder) Window(from, to int) window {
	r.mu.Lock()
	defer r.mu.Unlock()
	var w window
	for sec := max(from, 0); sec < to; sec++ {
		if sec < len(r.started) {
			w.answers.Sent += r.started[sec]
		}
		if sec >= len(r.seconds) {
			continue
		}
		for route, b := range r.seconds[sec] {
			a := &w.answers
			a.OK += b.ok
			a.Shed429 += b.s429
			a.Shed503 += b.s503
			a.Status500 += b.s500
			a.Other5xx += b.other5xx
			a.Timeouts += b.timeouts
			a.Transport += b.transport
			a.Refused += b.refused
			a.ShedWithoutRetryAfter += b.noRetryAfter
			w.answered += b.count()
			w.all = append(w.all, b.latencies...)
			if strings.HasPrefix(route, "POST ") {
				w.commands += b.ok
				w.commandsSent += b.count()
			}
			if route == "POST /orders" {
				w.acceptedOrders += b.ok
				w.orders = append(w.orders, b.latencies...)
			}
		}
	}
	return w
}

// lateCount is the number of requests started late so far.
func (r *Recorder) lateCount() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.late
}
