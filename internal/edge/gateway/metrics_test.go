package gateway_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"shopstream/internal/edge/gateway"
	"shopstream/internal/platform/command"
	"shopstream/producers/customers"
)

// signUps is a command bus whose only handler, of customers.SignUp,
// answers 201 and remembers the metadata it got.
func signUps() (*command.Bus, func() []command.Meta) {
	var mu sync.Mutex
	var metas []command.Meta
	bus := command.NewBus()
	command.Register(bus, func(_ context.Context, meta command.Meta, c customers.SignUp) (command.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		metas = append(metas, meta)
		return command.Created("/customers/"+c.CustomerID, c.CustomerID), nil
	})
	return bus, func() []command.Meta {
		mu.Lock()
		defer mu.Unlock()
		return append([]command.Meta(nil), metas...)
	}
}

func serve(t *testing.T, h http.Handler, method, path, body string, headers ...string) int {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

const signUpBody = `{"email": "zizou@example.org", "name": "Zinédine", "password": "coupe du monde 98"}`

// Request durations are labelled by the pattern that served the request
// (never its raw path, ids included) and the status answered.
func TestRequestDurationIsLabelledByRoutePattern(t *testing.T) {
	reg := prometheus.NewRegistry()
	bus, _ := signUps()
	g := gateway.New(gateway.Deps{Logger: slog.New(slog.DiscardHandler), Metrics: reg, Commands: bus})
	for _, r := range []struct {
		method, path, body string
		code               int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/products/not-an-id", "", 404},
		{"GET", "/products/other-id", "", 404},
		{"GET", "/no/such/route", "", 404},
		{"POST", "/customers", signUpBody, 201},
		{"POST", "/customers", `{"email": `, 400},
	} {
		if code := serve(t, g, r.method, r.path, r.body); code != r.code {
			t.Fatalf("%s %s: %d, want %d", r.method, r.path, code, r.code)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != gateway.MetricRequestDuration {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			got[l["route"]+" "+l["code"]] = m.GetHistogram().GetSampleCount()
		}
	}
	want := map[string]uint64{
		"GET /healthz 200": 1, "GET /products/{id} 404": 2, "unmatched 404": 1, "POST /customers 201": 1, "POST /customers 400": 1,
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: %d requests, want %d (all series: %v)", k, got[k], n, got)
		}
	}
}
