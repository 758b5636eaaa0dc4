package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestBadInputAndMuxAnswersAreProblemsOnTheRealStack: NUL and invalid
// UTF-8 reach no command (422 naming the field, not PostgreSQL's 22P05
// as a 500), an unsupported method is 405 with Allow, a page cursor that
// is no listed product is 400 naming after, and a 1.1 MB URL is 431, all
// problem+json, through the server `shop run` builds.
func TestBadInputAndMuxAnswersAreProblemsOnTheRealStack(t *testing.T) {
	s := startShop(t, t.TempDir())
	for _, c := range []struct{ method, path, body, field string }{
		{http.MethodPost, "/products", `{"title": "Maillot\u0000", "price_cents": 1, "quantity": 1}`, "title"},
		{http.MethodPost, "/customers", `{"email": "nul@example.com", "name": "Ma\u0000rcel", "password": "coupe du monde 98"}`, "name"},
		{http.MethodPost, "/customers", "{\"email\": \"utf@example.com\", \"name\": \"Ma\xffrcel\"}", "name"},
	} {
		code, h, b := s.do(c.method, c.path, "application/json", c.body)
		var p struct {
			Errors []struct{ Field string } `json:"errors"`
		}
		_ = json.Unmarshal(b, &p)
		if code != http.StatusUnprocessableEntity || h.Get("Content-Type") != "application/problem+json" || len(p.Errors) != 1 || p.Errors[0].Field != c.field {
			t.Errorf("%s %s %q: %d %s, want 422 naming %s", c.method, c.path, c.body, code, b, c.field)
		}
	}
	code, h, b := s.do(http.MethodPut, "/orders", "application/json", `{}`)
	if code != http.StatusMethodNotAllowed || h.Get("Allow") != "POST" || h.Get("Content-Type") != "application/problem+json" {
		t.Errorf("PUT /orders: %d Allow %q %s, want 405 problem with Allow: POST", code, h.Get("Allow"), b)
	}
	// A page cursor that is a UUID but no listed product.
	code, h, b = s.do(http.MethodGet, "/products?after="+uuid.NewString(), "", "")
	var p struct {
		Errors []struct{ Field string } `json:"errors"`
	}
	if _ = json.Unmarshal(b, &p); code != http.StatusBadRequest || h.Get("Content-Type") != "application/problem+json" || len(p.Errors) != 1 || p.Errors[0].Field != "after" {
		t.Errorf("GET /products?after=<unknown product>: %d %s, want 400 problem+json naming after", code, b)
	}
	code, h, _ = s.do(http.MethodGet, "/products?q="+strings.Repeat("x", 1100_000), "", "")
	if code != http.StatusRequestHeaderFieldsTooLarge || h.Get("Content-Type") != "application/problem+json" {
		t.Errorf("1.1 MB URL: %d %q, want 431 problem+json", code, h.Get("Content-Type"))
	}
}
