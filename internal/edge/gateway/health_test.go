package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// /readyz: 200 listing the checks while they pass; a failing one makes it
// a 503 unavailable problem naming the first failing dependency, with
// Retry-After and every check's result. /healthz answers the same, and
// /livez runs no check at all.
func TestReadyzLivezHealthz(t *testing.T) {
	down := map[string]bool{}
	var ran atomic.Int32
	check := func(name string) Check {
		return Check{Name: name, Check: func(context.Context) error {
			ran.Add(1)
			if down[name] {
				return errors.New(name + " refused")
			}
			return nil
		}}
	}
	checks := []Check{check(DepPostgres), check(DepMongo), check(DepKafka)}
	get := func(h http.HandlerFunc, path string) (*httptest.ResponseRecorder, map[string]any) {
		w := httptest.NewRecorder()
		h(w, httptest.NewRequest(http.MethodGet, path, nil))
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: %q: %v", path, w.Body, err)
		}
		return w, body
	}

	w, body := get(Readyz(checks), "/readyz")
	if w.Code != http.StatusOK || body["status"] != "ok" || len(body["checks"].(map[string]any)) != 3 {
		t.Errorf("all up: %d %v", w.Code, body)
	}

	down[DepMongo], down[DepKafka] = true, true
	for _, path := range []string{"/readyz", "/healthz"} {
		h := Readyz(checks)
		if path == "/healthz" {
			h = Healthz(checks)
		}
		w, body = get(h, path)
		cs, _ := body["checks"].(map[string]any)
		switch {
		case w.Code != http.StatusServiceUnavailable || w.Header().Get("Content-Type") != "application/problem+json":
			t.Errorf("%s, mongodb and kafka down: %d %q", path, w.Code, w.Header().Get("Content-Type"))
		case w.Header().Get("Retry-After") == "":
			t.Errorf("%s: no Retry-After", path)
		case body["type"] != "https://shopstream.dev/problems/unavailable" || body["dependency"] != DepMongo:
			t.Errorf("%s: %v, want an unavailable problem naming mongodb", path, body)
		case cs[DepPostgres] != "ok" || cs[DepMongo] != "unavailable" || cs[DepKafka] != "unavailable":
			t.Errorf("%s: checks %v, want the failures named, not their errors", path, cs)
		}
	}
	// The admin listener's /readyz gives the errors.
	w, body = get(readyz(checks, true), "/readyz")
	if cs, _ := body["checks"].(map[string]any); w.Code != http.StatusServiceUnavailable || cs[DepMongo] != "mongodb refused" || cs[DepKafka] != "kafka refused" {
		t.Errorf("detailed /readyz: %d %v, want each failure's error", w.Code, body)
	}

	ran.Store(0)
	w, body = get(Livez(), "/livez")
	if w.Code != http.StatusOK || body["status"] != "ok" || ran.Load() != 0 {
		t.Errorf("/livez with dependencies down: %d %v after %d checks, want 200 ok after none", w.Code, body, ran.Load())
	}
}
