package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"shopstream/internal/tools/loadtest/report"
)

func TestProfileCheckAndRate(t *testing.T) {
	bf := Profile{Name: BlackFriday, BaseRPS: 5, SpikeX: 20, Duration: 60 * time.Second}
	if err := bf.Check(); err != nil {
		t.Fatal(err)
	}
	if bf.SpikeAt != 20*time.Second || bf.SpikeFor != 20*time.Second {
		t.Fatalf("default spike %v for %v, want 20s for 20s", bf.SpikeAt, bf.SpikeFor)
	}
	for _, c := range []struct {
		at   time.Duration
		want float64
	}{{0, 5}, {19 * time.Second, 5}, {20 * time.Second, 100}, {39 * time.Second, 100}, {40 * time.Second, 5}} {
		if got := bf.Rate(c.at); got != c.want {
			t.Errorf("Rate(%v) = %v, want %v", c.at, got, c.want)
		}
	}
	// 20 s at 5/s, 20 s at 100/s, 20 s at 5/s.
	if got := bf.Arrivals(time.Hour); got != 2200 {
		t.Errorf("Arrivals over the run = %v, want 2200", got)
	}
	if got := bf.Arrivals(30 * time.Second); got != 100+1000 {
		t.Errorf("Arrivals(30s) = %v, want 1100", got)
	}
	steady := Profile{Name: Steady, BaseRPS: 10, SpikeX: 50, Duration: 10 * time.Second}
	if err := steady.Check(); err != nil || steady.Rate(5*time.Second) != 10 || steady.Arrivals(10*time.Second) != 100 {
		t.Fatalf("steady: %v, rate %v, arrivals %v", err, steady.Rate(5*time.Second), steady.Arrivals(10*time.Second))
	}
	for _, c := range []struct {
		p    Profile
		flag string
	}{
		{Profile{Name: "cyber-monday", BaseRPS: 1, Duration: time.Second}, "--profile"},
		{Profile{Name: Steady, BaseRPS: 0, Duration: time.Second}, "--base-rps"},
		{Profile{Name: Steady, BaseRPS: 1}, "--duration"},
		{Profile{Name: BlackFriday, BaseRPS: 1, SpikeX: 0.5, Duration: time.Second}, "--spike-x"},
		{Profile{Name: BlackFriday, BaseRPS: 1, SpikeX: 2, SpikeFor: 2 * time.Second, Duration: time.Second}, "--spike-for"},
	} {
		if err := c.p.Check(); err == nil || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("%+v: %v, want an error naming %s", c.p, err, c.flag)
		}
	}
}

func TestOneSeedOneSequence(t *testing.T) {
	seq := func(seed int64) string {
		next := chooser(seed)
		var b strings.Builder
		for range 200 {
			j := next(0)
			fmt.Fprintf(&b, "%s/%d/%d,", j.action, j.r1%100, j.r2%100)
		}
		return b.String()
	}
	if seq(7) != seq(7) {
		t.Fatal("one seed gave two sequences")
	}
	if seq(7) == seq(8) {
		t.Fatal("two seeds gave one sequence")
	}
	// The proportions follow the weights.
	next, counts := chooser(1), map[string]int{}
	for range 20000 {
		counts[next(0).action]++
	}
	for _, a := range Actions {
		share := float64(counts[a.Name]) / 20000 * 100
		if share < float64(a.Weight)*0.8-0.5 || share > float64(a.Weight)*1.2+0.5 {
			t.Errorf("%s: %.1f%% of requests, weight %d%%", a.Name, share, a.Weight)
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for _, c := range []struct{ p, want float64 }{{50, 5}, {95, 10}, {99, 10}, {100, 10}, {10, 1}} {
		if got := percentile(ms, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("empty percentile is not 0")
	}
}

// fakeShop answers every route the shoppers use, quickly, as the shop
// would: ids for creations, a sold-out 409 now and then, a 429 every 20th
// order.
func fakeShop(t testing.TB) (*httptest.Server, *atomic.Int64) {
	var n, orders atomic.Int64
	mux := http.NewServeMux()
	created := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"id":"%08d-0000-7000-8000-000000000000"}`, n.Load())
		}
	}
	mux.HandleFunc("POST /products", created(201))
	mux.HandleFunc("POST /customers", created(201))
	mux.HandleFunc("POST /products/{id}/reviews", created(201))
	mux.HandleFunc("POST /products/{id}/restock", created(200))
	mux.HandleFunc("POST /carts/items", created(200))
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		switch k := orders.Add(1); {
		case k%20 == 0:
			w.WriteHeader(429)
		case k%7 == 0:
			w.WriteHeader(409)
		default:
			created(202)(w, r)
		}
	})
	ok := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { n.Add(1); _, _ = w.Write([]byte(body)) }
	}
	mux.HandleFunc("POST /auth/token", ok(`{"access_token":"token","token_type":"Bearer","expires_in":900}`))
	mux.HandleFunc("GET /products", ok(`{"items":[],"next":null}`))
	mux.HandleFunc("GET /products/{id}", ok(`{"stock":3}`))
	mux.HandleFunc("GET /orders/{id}", ok(`{"status":"confirmed","invoice":{"emailed_at":"2026-11-21T00:00:00Z"}}`))
	mux.HandleFunc("GET /customers/{id}/orders", ok(`{"items":[]}`))
	mux.HandleFunc("GET /lag", ok(`{"groups":[{"group":"shop.saga","members":1,"lag":0}]}`))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &n
}

// The generator sends exactly the requests the profile asks for, counts
// each under its route and second, and keeps the accepted ids.
func TestDriveSendsWhatTheProfileAsks(t *testing.T) {
	srv, _ := fakeShop(t)
	p := Profile{Name: BlackFriday, BaseRPS: 50, SpikeX: 4, SpikeAt: time.Second, SpikeFor: time.Second, Duration: 3 * time.Second, Seed: 3}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	rec := NewRecorder(time.Now().Add(time.Hour))
	c := &client{base: srv.URL, rec: rec, http: srv.Client()}
	w := newWorld()
	if err := w.setup(context.Background(), c, Catalogue{Products: 10, HotProducts: 2, HotStock: 5, Stock: 50, Customers: 5}, p.Seed); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rec.start = start
	drive(context.Background(), p, w, c, 32, start)

	var rep report.Report
	rec.Fill(&rep, 3, func(sec int) float64 { return p.Rate(time.Duration(sec) * time.Second) })
	// Each sign-up is followed by its log-in, one request more than the
	// profile's arrivals: the shopper's token.
	logins := rep.Routes[indexOf(t, rep.Routes, "POST /auth/token")].Count
	signups := rep.Routes[indexOf(t, rep.Routes, "POST /customers")].Count
	if logins != signups || logins == 0 {
		t.Fatalf("%d log-ins for %d sign-ups in the load", logins, signups)
	}
	want := int64(p.Arrivals(p.Duration)) + logins // 50 + 200 + 50 arrivals
	if rep.Totals.Requests != want {
		t.Fatalf("%d requests recorded, want %d (setup requests must not count)", rep.Totals.Requests, want)
	}
	if sum := rep.Totals.OK + rep.Totals.Shed + rep.Totals.Refused + rep.Totals.Errors; sum != want {
		t.Fatalf("ok+shed+refused+errors = %d, want %d", sum, want)
	}
	if rep.Totals.Errors != 0 {
		t.Fatalf("%d errors against a shop that never fails", rep.Totals.Errors)
	}
	if len(rep.Seconds) < 3 || rep.Seconds[1].TargetRPS != 200 {
		t.Fatalf("seconds: %d, second 1 target %v", len(rep.Seconds), rep.Seconds[1].TargetRPS)
	}
	var spike, base int64
	for _, r := range rep.Seconds[1].Routes {
		spike += r.Count
	}
	for _, r := range rep.Seconds[0].Routes {
		base += r.Count
	}
	if spike < 3*base {
		t.Errorf("second 0: %d requests, second 1 (spike x4): %d", base, spike)
	}
	acc := w.snapshot()
	orders := rep.Routes[indexOf(t, rep.Routes, "POST /orders")]
	if int64(len(acc.Orders)) != orders.OK || orders.Shed == 0 || orders.Refused == 0 {
		t.Fatalf("orders: %+v, %d accepted ids", orders, len(acc.Orders))
	}
	if len(acc.Products) != 10 || len(acc.Customers) < 5 {
		t.Fatalf("accepted %d products, %d customers", len(acc.Products), len(acc.Customers))
	}
}

func indexOf(t *testing.T, routes []report.RouteSummary, route string) int {
	for i, r := range routes {
		if r.Route == route {
			return i
		}
	}
	t.Fatalf("no route %s in %+v", route, routes)
	return -1
}

func TestLagLine(t *testing.T) {
	got := lagLine(map[string]int64{"shop.saga": 3, "shop.email": 40, "shop.projector.orders.v2": 0})
	if got != "43 (email 40, saga 3)" {
		t.Fatalf("lagLine = %q", got)
	}
	if got := lagLine(map[string]int64{}); got != "0" {
		t.Errorf("no group lags: lagLine = %q, want 0", got)
	}
	// nil: not measured, or the last GET /lag failed (the broker is down).
	if got := lagLine(nil); got != "?" {
		t.Errorf("lag unknown: lagLine = %q, want ?", got)
	}
}

// The live line and the plain summary count a 503 with Retry-After as shed,
// as a 429 (the ramp's answers keep them apart); a 503 without Retry-After
// is an error.
func TestSheddingIsNotAnError(t *testing.T) {
	start := time.Now()
	rec := NewRecorder(start)
	at := start.Add(10 * time.Millisecond)
	for _, c := range []struct {
		route string
		a     answer
	}{
		{"POST /orders", answer{status: 202}},
		{"POST /orders", answer{status: 429, retryAfter: true}},
		{"POST /orders", answer{status: 503, retryAfter: true}},
		{"GET /products", answer{status: 503, retryAfter: true}},
		{"GET /products", answer{status: 503}},
		{"GET /products", answer{status: 500}},
		{"GET /products", answer{}},
		{"POST /customers", answer{status: 409}},
	} {
		rec.Started(at)
		rec.record(c.route, at, time.Millisecond, c.a)
	}
	if l := rec.Second(0); l.Shed != 3 || l.Errors != 3 || l.OK != 1 || l.Refused != 1 {
		t.Errorf("live second: %+v, want 3 shed, 3 errors, 1 ok, 1 refused", l)
	}
	var rep report.Report
	rec.Fill(&rep, 1, func(int) float64 { return 1 })
	if tt := rep.Totals; tt.Shed != 3 || tt.Errors != 3 || tt.OK != 1 || tt.Refused != 1 || tt.Requests != 8 {
		t.Errorf("totals: %+v, want 3 shed, 3 errors, 1 ok, 1 refused of 8", tt)
	}
	if r := rep.Routes[indexOf(t, rep.Routes, "GET /products")]; r.Shed != 1 || r.Errors != 3 {
		t.Errorf("GET /products: %+v, want 1 shed, 3 errors", r)
	}
	if s := rep.Seconds[0].Routes["POST /orders"]; s.Shed != 2 || s.Errors != 0 {
		t.Errorf("second 0 POST /orders: %+v, want 2 shed, no error", s)
	}
	a := rec.Window(0, 1).answers
	if a.Shed429 != 1 || a.Shed503 != 3 || a.ShedWithoutRetryAfter != 1 || a.Status500 != 1 || a.Transport != 1 {
		t.Errorf("ramp answers: %+v, want 429 1, 503 3 (1 without Retry-After), 500 1, transport 1", a)
	}
}

// BenchmarkGenerator measures the rate the generator sustains alone,
// against a shop that answers at once: it must be far above any rate a
// load test asks of the shop.
//
//	go test -run '^$' -bench Generator ./internal/tools/loadtest
func BenchmarkGenerator(b *testing.B) {
	srv, _ := fakeShop(b)
	const rate = 20000
	for b.Loop() {
		p := Profile{Name: Steady, BaseRPS: rate, Duration: 3 * time.Second, Seed: 1}
		if err := p.Check(); err != nil {
			b.Fatal(err)
		}
		rec := NewRecorder(time.Now().Add(time.Hour))
		tr := &http.Transport{MaxIdleConns: DefaultWorkers, MaxIdleConnsPerHost: DefaultWorkers}
		c := &client{base: srv.URL, rec: rec, http: &http.Client{Transport: tr}}
		w := newWorld()
		if err := w.setup(context.Background(), c, DefaultCatalogue, 1); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		rec.start = start
		drive(context.Background(), p, w, c, DefaultWorkers, start)
		took := time.Since(start)
		var rep report.Report
		rec.Fill(&rep, 3, func(int) float64 { return rate })
		tr.CloseIdleConnections()
		b.ReportMetric(float64(rep.Totals.Requests)/took.Seconds(), "requests/s")
		b.ReportMetric(float64(rep.Totals.Late), "late")
		b.ReportMetric(float64(rep.Totals.Errors), "errors")
		b.Logf("asked %d/s for %v: sent %d in %v (%.0f/s), %d started late, %d errors",
			rate, p.Duration, rep.Totals.Requests, took.Round(time.Millisecond), float64(rep.Totals.Requests)/took.Seconds(), rep.Totals.Late, rep.Totals.Errors)
	}
}

// While GET /lag fails (the admin listener answers 503 with the broker down), the
// live line says the lag is unknown, not 0; it shows figures again once
// the lag can be read.
func TestLiveLagUnknownWhileBrokerDown(t *testing.T) {
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"title":"kafka unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"groups":[{"group":"shop.saga","members":1,"lag":3},{"group":"shop.gone","members":0,"lag":9}]}`)
	}))
	defer srv.Close()
	s, err := newSampler(context.Background(), &client{base: srv.URL, admin: srv.URL, http: srv.Client()}, time.Now(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	line := func() string { l, _ := s.lastLag(); return lagLine(l) }
	if got := line(); got != "?" {
		t.Errorf("before the first sample: lag %q, want ?", got)
	}
	s.sample(context.Background())
	if got := line(); got != "3 (saga 3)" {
		t.Errorf("lag readable: %q, want 3 (saga 3)", got)
	}
	down.Store(true)
	s.sample(context.Background())
	if got := line(); got != "?" {
		t.Errorf("GET /lag answering 503: lag %q, want ?", got)
	}
	down.Store(false)
	s.sample(context.Background())
	if got := line(); got != "3 (saga 3)" {
		t.Errorf("broker back: lag %q, want 3 (saga 3)", got)
	}
}
