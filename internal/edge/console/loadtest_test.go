package console

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A load test's seconds, reported as staff, show on the load-test view:
// the last second's figures, the profile against what was sent, each
// route; a report without a staff key is refused with a problem.
func TestLoadTestView(t *testing.T) {
	c, err := New(Config{IsStaff: func(k string) bool { return k == "sk_test_key_0123456789" }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	post := func(key string, s LoadSecond) int {
		b, _ := json.Marshal(s)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/console/loadtest", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("401 without a problem: %s", resp.Header.Get("Content-Type"))
		}
		return resp.StatusCode
	}
	if code := post("", LoadSecond{T: 0}); code != http.StatusUnauthorized {
		t.Fatalf("an anonymous report: %d, want 401", code)
	}
	for sec := range 5 {
		s := LoadSecond{T: sec, Phase: "blackfriday", Target: float64(10 * (sec + 1)), Sent: int64(9 * (sec + 1)), OK: 8, Shed: 1, P95: 12,
			Routes: map[string]RouteLive{"POST /orders": {Count: 3, Shed: 1, P95: 20}, "GET /products/{id}": {Count: 6, P95: 4}}}
		if code := post("sk_test_key_0123456789", s); code != http.StatusNoContent {
			t.Fatalf("second %d: %d", sec, code)
		}
	}
	resp, err := http.Get(srv.URL + "/console/loadtest")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	for _, want := range []string{`id="second">4<`, "POST /orders", "GET /products/{id}", `class="limit"`, "the spike profile"} {
		if !strings.Contains(page, want) {
			t.Errorf("the load-test view lacks %q", want)
		}
	}
}
