package loadtest

import (
	"slices"
	"sort"
	"sync"
	"time"

	"shopstream/internal/loadtest/report"
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
	ok, shed, refused, errors int64
	latencies                 []float64 // ms
}

func (b *bucket) add(status int, ms float64) {
	switch {
	case status/100 == 2:
		b.ok++
	case status == 429:
		b.shed++
	case status/100 == 4:
		b.refused++
	default: // 5xx, or 0: no answer
		b.errors++
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
		b.add(status, ms)
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
// line: the requests sent in it, and the answers to them so far.
type Live struct {
	Sent, Answered, OK, Shed, Refused, Errors int64
	P95                                       float64
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
	for _, b := range r.seconds[sec] {
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
	for _, route := range routes {
		b := r.routes[route]
		rep.Routes = append(rep.Routes, report.RouteSummary{Route: route, Count: b.count(), OK: b.ok, Shed: b.shed, Refused: b.refused, Errors: b.errors,
			P50: percentile(b.latencies, 50), P95: percentile(b.latencies, 95), P99: percentile(b.latencies, 99), Max: percentile(b.latencies, 100)})
		t.Requests += b.count()
		t.OK += b.ok
		t.Shed += b.shed
		t.Refused += b.refused
		t.Errors += b.errors
	}
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
