package gateway

import (
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestAsyncAPIServed checks GET /asyncapi.json: the document Deps.AsyncAPI
// generates (once), 404 without one, a 500 problem when it fails.
func TestAsyncAPIServed(t *testing.T) {
	get := func(g *Gateway) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/asyncapi.json", nil))
		return rec
	}
	discard := slog.New(slog.DiscardHandler)

	calls := 0
	doc := []byte(`{"asyncapi":"3.0.0"}`)
	g := New(Deps{Auth: testAuth, Logger: discard, AsyncAPI: func() ([]byte, error) { calls++; return doc, nil }})
	for range 2 {
		rec := get(g)
		if rec.Code != http.StatusOK || rec.Body.String() != string(doc) {
			t.Fatalf("status %d, body %q; want 200 and the document", rec.Code, rec.Body.String())
		}
		if mt, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type")); mt != "application/json" {
			t.Errorf("Content-Type %q", rec.Header().Get("Content-Type"))
		}
		if rec.Header().Get("X-Correlation-ID") == "" {
			t.Error("no X-Correlation-ID")
		}
	}
	if calls != 1 {
		t.Errorf("the document was generated %d times, want once", calls)
	}

	if rec := get(New(Deps{Auth: testAuth, Logger: discard})); rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("without Deps.AsyncAPI: status %d, %q; want a 404 problem", rec.Code, rec.Header().Get("Content-Type"))
	}
	failing := New(Deps{Auth: testAuth, Logger: discard, AsyncAPI: func() ([]byte, error) { return nil, errors.New("catalogue broken") }})
	if rec := get(failing); rec.Code != http.StatusInternalServerError {
		t.Errorf("failing generator: status %d, want 500", rec.Code)
	}
}
