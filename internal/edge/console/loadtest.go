package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
)

// LoadSecond is one second of a running load test, as `shop loadtest`
// reports it to the console of the shop it loads (POST /console/loadtest).
type LoadSecond struct {
	T       int                  `json:"t"` // seconds since the start of the load
	Phase   string               `json:"phase"`
	Target  float64              `json:"target_rps"`
	Sent    int64                `json:"sent"`
	OK      int64                `json:"ok"`
	Shed    int64                `json:"shed"` // 429s and 503s with Retry-After
	Refused int64                `json:"refused"`
	Errors  int64                `json:"errors"`
	P95     float64              `json:"p95_ms"`
	Routes  map[string]RouteLive `json:"routes"`
}

// RouteLive is one route in one second of a load test.
type RouteLive struct {
	Count int64   `json:"count"`
	Shed  int64   `json:"shed"`
	P95   float64 `json:"p95_ms"`
}

// maxLoadSeconds bounds the load test's history the console keeps.
const maxLoadSeconds = 3600

func (c *Console) reportLoad(w http.ResponseWriter, r *http.Request) {
	var s LoadSecond
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&s); err != nil {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, `{"type":"/problems/malformed","title":"Bad Request","status":400,"detail":%q}`, "a load test second as JSON: "+err.Error())
		return
	}
	c.mu.Lock()
	if len(c.load) > 0 && s.T < c.load[len(c.load)-1].T {
		c.load = nil // a new run
	}
	c.load = append(c.load, s)
	if len(c.load) > maxLoadSeconds {
		c.load = c.load[len(c.load)-maxLoadSeconds:]
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Load is what the load-test page shows.
type Load struct {
	Seconds []LoadSecond
	Last    LoadSecond
	Routes  []string
}

func (c *Console) loadtest(*http.Request) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := Load{Seconds: slices.Clone(c.load)}
	if n := len(l.Seconds); n > 0 {
		l.Last = l.Seconds[n-1]
		for r := range l.Last.Routes {
			l.Routes = append(l.Routes, r)
		}
		slices.Sort(l.Routes)
	}
	return l, nil
}
