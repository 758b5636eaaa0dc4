package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"shopstream/internal/tools/loadtest/report"
)

// relayShop is a shop that answers every request at once but whose outbox
// relay publishes only drain orders' worth of events a second: past that
// rate its shop_outbox_backlog grows.
func relayShop(t testing.TB, drain float64) *httptest.Server {
	var n atomic.Int64
	var mu sync.Mutex
	var backlog float64
	last := time.Now()
	relay := func(add float64) float64 {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		backlog = max(0, backlog-drain*now.Sub(last).Seconds()) + add
		last = now
		return backlog
	}
	mux := http.NewServeMux()
	created := func(status int, order bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if order {
				relay(1)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"id":"%08d-0000-7000-8000-000000000000"}`, n.Add(1))
		}
	}
	for _, route := range []string{"POST /products", "POST /customers", "POST /products/{id}/reviews"} {
		mux.HandleFunc(route, created(201, false))
	}
	mux.HandleFunc("POST /products/{id}/restock", created(200, false))
	mux.HandleFunc("POST /carts/items", created(200, false))
	mux.HandleFunc("POST /orders", created(202, true))
	ok := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) }
	}
	mux.HandleFunc("GET /products", ok(`{"items":[],"next":null}`))
	mux.HandleFunc("GET /products/{id}", ok(`{"stock":3}`))
	mux.HandleFunc("GET /orders/{id}", ok(`{"status":"confirmed","invoice":{"emailed_at":"2026-11-21T00:00:00Z"}}`))
	mux.HandleFunc("GET /customers/{id}/orders", ok(`{"items":[]}`))
	mux.HandleFunc("GET /lag", ok(`{"groups":[{"group":"shop.processor.saga.v1","members":1,"lag":0,"partitions":[]}]}`))
	mux.HandleFunc("POST /auth/token", ok(`{"access_token":"token","token_type":"Bearer","expires_in":900}`))
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE shop_outbox_backlog gauge\nshop_outbox_backlog{outbox=\"outbox.records\"} %.0f\n", relay(0))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// The ramp against a shop whose relay drains 30 orders/s: 10 orders/s
// holds, 90 does not, and the relay is named; the spike at 5 × 10 and the
// half-capacity probe run; the report is written with the ramp charts.
// Without brokers the invariants cannot hold: Ramp says so and still
// returns the report.
func TestRampNamesTheRelay(t *testing.T) {
	srv := relayShop(t, 30)
	out := t.TempDir()
	cfg := Config{Target: srv.URL, Admin: srv.URL, StaffKey: "staff-key-of-the-fake-shop", Out: out, DrainTimeout: 10 * time.Second, Workers: 64,
		Catalogue: Catalogue{Products: 10, HotProducts: 2, HotStock: 1000, Stock: 1000, Customers: 5}}
	rc := RampConfig{Start: 10, Step: 80, Max: 170, StepFor: 2 * time.Second, Mix: MixOrders,
		SpikeFor: time.Second, VisibleFor: time.Second}
	rep, err := Ramp(context.Background(), cfg, rc)
	if !errors.Is(err, ErrInvariants) {
		t.Fatalf("Ramp without brokers: %v, want ErrInvariants", err)
	}
	if rep == nil || rep.Ramp == nil {
		t.Fatal("no ramp in the report")
	}
	rp := rep.Ramp
	if len(rp.Steps) != 2 || !rp.Steps[0].Holds || rp.Steps[1].Holds {
		t.Fatalf("steps: %+v", rp.Steps)
	}
	if rp.Sustainable != 10 || rp.Bottleneck != StageRelay || rp.Stopped != "lag" {
		t.Fatalf("sustainable %v, bottleneck %q (%s), stopped %q", rp.Sustainable, rp.Bottleneck, rp.BottleneckReason, rp.Stopped)
	}
	if st := rp.Steps[0]; st.Offered != 10 || st.AcceptedOrders < 9 || st.AcceptedOrders > 11 || st.Answers.Status500 != 0 {
		t.Errorf("step 1: %+v", st)
	}
	sp := rp.Spike
	if sp == nil || sp.Offered != 50 || sp.AcceptedOrders < 45 || !sp.No500 || !sp.Drained {
		t.Fatalf("spike: %+v", sp)
	}
	if v := rp.Visible; v == nil || v.Offered != 5 || v.Seen < 4 || v.NotSeen != 0 {
		t.Fatalf("visible: %+v", v)
	}
	for _, f := range []string{report.RampThroughputFile, report.RampStagesFile, report.RampLatencyFile, report.HTMLFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	// The target line follows the phases: step 1, step 2, spike, half.
	var targets []float64
	for _, s := range rep.Seconds {
		if len(targets) == 0 || targets[len(targets)-1] != s.TargetRPS {
			targets = append(targets, s.TargetRPS)
		}
	}
	var phases []float64
	for _, v := range targets {
		if v != 0 {
			phases = append(phases, v)
		}
	}
	if fmt.Sprint(phases) != "[10 90 50 5]" {
		t.Errorf("target rates over the run %v, want the phases 10, 90, 50, 5 orders/s", targets)
	}
}
