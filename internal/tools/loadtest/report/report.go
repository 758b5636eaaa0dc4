// Package report holds what a load run measured (the [Report], written as
// report.json) and renders it for people: report.html, self-contained
// (charts inline as SVG, no script, no network), and one PNG per chart for
// a terminal or a pull request.
package report

import "time"

// Report is every figure of one `shop loadtest` run. report.json is this
// struct encoded; the HTML and PNG charts are drawn from it alone.
type Report struct {
	Profile Profile   `json:"profile"`
	Target  string    `json:"target"` // the shop's base URL
	Started time.Time `json:"started"`
	Machine Machine   `json:"machine"`
	Totals  Totals    `json:"totals"`

	// Seconds has one entry per second of load, in order.
	Seconds []Second `json:"seconds"`
	// Routes sums each route over the whole run, sorted by route.
	Routes []RouteSummary `json:"routes"`
	// Lag is the consumer lag of each shop group, sampled about once a
	// second from the start of the load to the end of the drain.
	Lag []LagSample `json:"lag"`
	// Emails is the number of invoice emails sent in each second, with the
	// quota the email group must hold (EmailQuota, per second; 0 if unknown).
	Emails     []EmailSample `json:"emails"`
	EmailQuota int           `json:"email_quota"`
	// Stock follows the hottest products (most ordered) over time.
	Stock []StockSeries `json:"stock"`

	Drain      Drain       `json:"drain"`
	Invariants []Invariant `json:"invariants"`

	// Ramp is the capacity search of `shop loadtest --ramp`; nil otherwise.
	Ramp *Ramp `json:"ramp,omitempty"`
}

// Profile is the load asked for.
type Profile struct {
	Name     string        `json:"name"` // steady or blackfriday
	BaseRPS  float64       `json:"base_rps"`
	SpikeX   float64       `json:"spike_x"`   // blackfriday: the spike is SpikeX times BaseRPS
	SpikeAt  time.Duration `json:"spike_at"`  // from the start
	SpikeFor time.Duration `json:"spike_for"` // 0 for steady
	Duration time.Duration `json:"duration"`
	Seed     int64         `json:"seed"`
}

// Machine says where the run was measured.
type Machine struct {
	Hostname  string `json:"hostname"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
}

// Totals sums the whole run.
type Totals struct {
	Requests    int64   `json:"requests"`
	OK          int64   `json:"ok"`      // 2xx
	Shed        int64   `json:"shed"`    // 429, or 503 with Retry-After: the shop shed load or said a dependency is down
	Refused     int64   `json:"refused"` // other 4xx: the shop said no (sold out, bad state)
	Errors      int64   `json:"errors"`  // 5xx and transport errors
	Late        int64   `json:"late"`    // requests the generator started after their scheduled time + 1 s (it fell behind)
	AchievedRPS float64 `json:"achieved_rps"`
	// Latency percentiles of every answer, all routes together, in ms.
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`

	OrdersAccepted  int64 `json:"orders_accepted"`
	OrdersConfirmed int64 `json:"orders_confirmed"`
	OrdersCancelled int64 `json:"orders_cancelled"`
	EmailsSent      int64 `json:"emails_sent"`
}

// Second is one second of load.
type Second struct {
	T         int                    `json:"t"`          // seconds since the start of the load
	TargetRPS float64                `json:"target_rps"` // what the profile asked for
	Routes    map[string]RouteSecond `json:"routes"`     // by route pattern, e.g. "POST /orders"
}

// RouteSecond is one route in one second. Latencies are of every answer
// (any status) in milliseconds.
type RouteSecond struct {
	Count  int64   `json:"count"`
	Errors int64   `json:"errors"`
	Shed   int64   `json:"shed"`
	P50    float64 `json:"p50_ms"`
	P95    float64 `json:"p95_ms"`
	P99    float64 `json:"p99_ms"`
}

// RouteSummary is one route over the whole run.
type RouteSummary struct {
	Route   string  `json:"route"`
	Count   int64   `json:"count"`
	OK      int64   `json:"ok"`
	Shed    int64   `json:"shed"`
	Refused int64   `json:"refused"`
	Errors  int64   `json:"errors"`
	P50     float64 `json:"p50_ms"`
	P95     float64 `json:"p95_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
}

// LagSample is the lag of every shop consumer group at one moment.
type LagSample struct {
	T      float64          `json:"t"` // seconds since the start of the load
	Groups map[string]int64 `json:"groups"`
}

// EmailSample is the number of emails sent during the second starting at T.
type EmailSample struct {
	T    int `json:"t"`
	Sent int `json:"sent"`
}

// StockSeries is the stock of one product over time, as the read side saw it.
type StockSeries struct {
	ProductID string       `json:"product_id"`
	Title     string       `json:"title"`
	Points    []StockPoint `json:"points"`
}

// StockPoint is a product's stock at T seconds since the start of the load.
type StockPoint struct {
	T     float64 `json:"t"`
	Stock int64   `json:"stock"`
}

// Drain is the wait after the load for the pipeline to finish its work.
type Drain struct {
	Elapsed time.Duration `json:"elapsed"`
	Drained bool          `json:"drained"` // false: the timeout ended it
	Timeout time.Duration `json:"timeout"`
}

// Invariant is one design invariant (I1 to I6) checked after the drain.
type Invariant struct {
	ID         string   `json:"id"`   // "I1" … "I6"
	Name       string   `json:"name"` // what it protects, in a few words
	Holds      bool     `json:"holds"`
	Checked    int      `json:"checked"`              // how many things were checked
	Detail     string   `json:"detail"`               // one line: what was checked, what was found
	Violations []string `json:"violations,omitempty"` // the first few offenders
}

// Holds reports whether every invariant holds.
func (r *Report) Holds() bool {
	for _, inv := range r.Invariants {
		if !inv.Holds {
			return false
		}
	}
	return len(r.Invariants) > 0
}
