package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"shopstream/internal/app"
	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/edge/gateway"
	"shopstream/internal/testinfra/apiclient"
	"shopstream/internal/testinfra/testenv"
)

// Who may do what, tried as outsiders would: anonymous callers, a
// customer reaching for another's data, a forged token, a guessed
// idempotency key, a cross-site page. Every refusal is a problem+json,
// and no token, key or password reaches the shop's logs (kept at debug
// level for the test).
func TestEachCallerReachesOnlyWhatIsTheirs(t *testing.T) {
	logs := &testenv.LockedBuffer{}
	dir := t.TempDir()
	s := startShopOn(t, devstack.Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))},
		func(c *app.Config) {
			c.CORSOrigins = []string{"https://shop.example"}
			c.HTTPLimits.AuthRate, c.HTTPLimits.AuthBurst = 0.2, 6
		})
	ctx := context.Background()
	pool := s.pool()
	product := s.product(pool, 20)
	a, err := apiclient.SignUp(ctx, s.base)
	if err != nil {
		t.Fatal(err)
	}
	b, err := apiclient.SignUp(ctx, s.base)
	if err != nil {
		t.Fatal(err)
	}
	as := func(who string) []string {
		switch who {
		case "anonymous":
			return []string{"X-Anonymous", "1"}
		case "a":
			return []string{"Authorization", "Bearer " + a.Token}
		case "b":
			return []string{"Authorization", "Bearer " + b.Token}
		}
		return nil // staff: the shop client's key
	}
	call := func(who, method, path, body string, headers ...string) (int, http.Header, map[string]any) {
		t.Helper()
		ct := ""
		if body != "" {
			ct = "application/json"
		}
		code, h, raw := s.do(method, path, ct, body, append(as(who), headers...)...)
		var m map[string]any
		if len(raw) > 0 {
			m = decodeBody(t, raw)
		}
		if code >= 400 && h.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s as %s: %d with Content-Type %q, want a problem+json", method, path, who, code, h.Get("Content-Type"))
		}
		return code, h, m
	}

	// A's order, placed as A (the customer comes from the token).
	code, _, placed := call("a", http.MethodPost, "/orders", fmt.Sprintf(`{"payment_method": "card", "items": [{"product_id": %q, "quantity": 1}]}`, product))
	if code != http.StatusAccepted {
		t.Fatalf("A places an order: %d %v", code, placed)
	}
	orderA := placed["id"].(string)
	s.waitOrder(orderA, 20*time.Second, func(o map[string]any) bool { return o["customer_id"] == a.ID })

	for _, c := range []struct {
		who, method, path, body string
		want                    int
	}{
		{"anonymous", http.MethodPost, "/orders", fmt.Sprintf(`{"customer_id": %q, "payment_method": "card"}`, a.ID), 401},
		{"anonymous", http.MethodGet, "/orders/" + orderA, "", 401},
		{"anonymous", http.MethodGet, "/customers/" + a.ID + "/orders", "", 401},
		{"anonymous", http.MethodPost, "/products", `{"title": "x", "price_cents": 1, "quantity": 1}`, 401},
		{"anonymous", http.MethodPost, "/products/" + product + "/restock", `{"quantity": 3000000}`, 401},
		{"anonymous", http.MethodPost, "/products/" + product + "/reviews", fmt.Sprintf(`{"customer_id": %q, "rating": 1}`, a.ID), 401},
		{"b", http.MethodGet, "/orders/" + orderA, "", 404}, // not B's to know it exists
		{"b", http.MethodGet, "/customers/" + a.ID + "/orders", "", 403},
		{"b", http.MethodPost, "/orders", fmt.Sprintf(`{"customer_id": %q, "payment_method": "card", "items": [{"product_id": %q, "quantity": 1}]}`, a.ID, product), 403},
		{"b", http.MethodPost, "/carts/items", fmt.Sprintf(`{"customer_id": %q, "product_id": %q, "quantity": 1}`, a.ID, product), 403},
		{"b", http.MethodDelete, "/carts/" + a.ID + "/items/" + product, "", 403},
		{"b", http.MethodPost, "/products/" + product + "/reviews", fmt.Sprintf(`{"customer_id": %q, "rating": 1}`, a.ID), 403},
		{"b", http.MethodPost, "/products", `{"title": "x", "price_cents": 1, "quantity": 1}`, 403},
		{"b", http.MethodPost, "/products/" + product + "/restock", `{"quantity": 3000000}`, 403},
		{"staff", http.MethodGet, "/lag", "", 404}, // the admin listener's, not the public port's
		{"staff", http.MethodGet, "/metrics", "", 404},
		{"staff", http.MethodGet, "/dev/endpoints", "", 404},
		{"a", http.MethodGet, "/orders/" + orderA, "", 200},
		{"a", http.MethodGet, "/customers/" + a.ID + "/orders", "", 200},
		{"staff", http.MethodGet, "/orders/" + orderA, "", 200},
		{"staff", http.MethodGet, "/customers/" + a.ID + "/orders", "", 200},
		{"anonymous", http.MethodGet, "/products/" + product, "", 200},
	} {
		if code, h, p := call(c.who, c.method, c.path, c.body); code != c.want {
			t.Errorf("%s %s as %s: %d %v, want %d", c.method, c.path, c.who, code, p, c.want)
		} else if code == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s %s as %s: 401 without a Bearer challenge", c.method, c.path, c.who)
		}
	}

	// A review is written as its author, whatever the body would say.
	if code, _, p := call("b", http.MethodPost, "/products/"+product+"/reviews", `{"rating": 5, "comment": "from B"}`); code != http.StatusCreated {
		t.Fatalf("B reviews as B: %d %v", code, p)
	}
	s.waitProduct(product, func(p map[string]any) bool {
		for _, r := range p["reviews"].([]any) {
			if rv := r.(map[string]any); rv["comment"] == "from B" {
				return rv["customer_id"] == b.ID
			}
		}
		return false
	})

	// Refused credentials: forged, expired-looking, malformed, unknown key.
	parts := strings.Split(a.Token, ".")
	for name, h := range map[string][]string{
		"signature of another token": {"Authorization", "Bearer " + parts[0] + "." + parts[1] + "." + strings.Split(b.Token, ".")[2]},
		"not a JWT":                  {"Authorization", "Bearer hello"},
		"a guessed staff key":        {"X-API-Key", "sk_dev_guessed_guessed_guessed"},
	} {
		code, hdr, p := call("none", http.MethodGet, "/products/"+product, "", h...)
		if code != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: %d %v %q, want 401 invalid_token even on a public route", name, code, p, hdr.Get("WWW-Authenticate"))
		}
	}
	for name, body := range map[string]string{
		"wrong password": fmt.Sprintf(`{"email": %q, "password": "not the password"}`, a.Email),
		"unknown email":  `{"email": "nobody@example.org", "password": "not the password"}`,
	} {
		if code, _, p := call("anonymous", http.MethodPost, "/auth/token", body); code != http.StatusUnauthorized || p["detail"] != "wrong email or password" {
			t.Errorf("log in with %s: %d %v, want 401 wrong email or password", name, code, p)
		}
	}

	// Idempotency keys belong to their caller: B's key "k" is not A's.
	orderBody := fmt.Sprintf(`{"payment_method": "card", "items": [{"product_id": %q, "quantity": 1}]}`, product)
	_, _, first := call("a", http.MethodPost, "/orders", orderBody, "Idempotency-Key", "k")
	code, h, other := call("b", http.MethodPost, "/orders", orderBody, "Idempotency-Key", "k")
	if code != http.StatusAccepted || h.Get("Idempotent-Replayed") != "" || other["id"] == first["id"] {
		t.Errorf("B with A's key: %d %v replayed=%q, want B's own order", code, other, h.Get("Idempotent-Replayed"))
	}
	if code, h, again := call("a", http.MethodPost, "/orders", orderBody, "Idempotency-Key", "k"); code != http.StatusAccepted ||
		h.Get("Idempotent-Replayed") != "true" || again["id"] != first["id"] {
		t.Errorf("A again with its key: %d %v, want its first answer replayed", code, again)
	}

	// Bodies must say they are JSON: no simple cross-site request gets in.
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded"} {
		code, _, raw := s.do(http.MethodPost, "/orders", ct, orderBody, as("a")...)
		if code != http.StatusUnsupportedMediaType {
			t.Errorf("POST /orders with Content-Type %q: %d %s, want 415", ct, code, raw)
		}
	}
	// CORS: only the allowed origin gets the headers a browser needs.
	for origin, allowed := range map[string]bool{"https://shop.example": true, "https://evil.example": false} {
		code, h, _ := s.do(http.MethodOptions, "/orders", "", "", "Origin", origin, "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "authorization,content-type", "X-Anonymous", "1")
		if got := h.Get("Access-Control-Allow-Origin"); (got == origin) != allowed || (!allowed && got != "") {
			t.Errorf("preflight from %s: %d Access-Control-Allow-Origin %q, allowed=%v", origin, code, got, allowed)
		}
	}

	// Sign-ups from one address are limited (burst 6 at 0.2/s here; two
	// were spent above, and two log-ins): 429 problem with Retry-After.
	var limited *http.Header
	for i := range 8 {
		code, h, p := call("anonymous", http.MethodPost, "/customers",
			fmt.Sprintf(`{"email": "burst%d-%d@example.org", "name": "B", "password": %q}`, i, time.Now().UnixNano(), apiclient.Password))
		if code == http.StatusTooManyRequests {
			if h.Get("Retry-After") == "" || !strings.HasSuffix(fmt.Sprint(p["type"]), "/rate-limited") {
				t.Errorf("429 without Retry-After or kind: %v %v", h, p)
			}
			limited = &h
			break
		}
	}
	if limited == nil {
		t.Errorf("8 sign-ups from one address in a row were all admitted (burst %d)", gateway.DefaultAuthBurst)
	}

	for _, secret := range []string{a.Token, b.Token, a.Password, s.stack.Secrets.StaffKey, s.stack.Secrets.TokenSecret} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the shop's logs hold a credential (%.12s…)", secret)
		}
	}
	if !strings.Contains(logs.String(), "level=DEBUG") {
		t.Error("no debug line in the logs: the leak check looked at nothing")
	}
}

// A token lives for its TTL: past it the same token is refused, saying
// so, and a new log-in gives a working one.
func TestTokensExpire(t *testing.T) {
	s := startShop(t, t.TempDir(), func(c *app.Config) { c.Auth.TokenTTL = time.Second })
	ctx := context.Background()
	c, err := apiclient.SignUp(ctx, s.base)
	if err != nil {
		t.Fatal(err)
	}
	path := "/customers/" + c.ID + "/orders"
	if code, _, b := s.do(http.MethodGet, path, "", "", "Authorization", "Bearer "+c.Token); code != http.StatusOK {
		t.Fatalf("fresh token: %d %s", code, b)
	}
	time.Sleep(2100 * time.Millisecond) // jwt's leeway is 0: one second past exp is expired
	if code, _, b := s.do(http.MethodGet, path, "", "", "Authorization", "Bearer "+c.Token); code != http.StatusUnauthorized ||
		!strings.Contains(string(b), "expired") {
		t.Fatalf("token past its TTL: %d %s, want 401 saying it expired", code, b)
	}
	tok, err := apiclient.LogIn(ctx, s.base, c.Email, c.Password)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, b := s.do(http.MethodGet, path, "", "", "Authorization", "Bearer "+tok); code != http.StatusOK {
		t.Fatalf("new token: %d %s", code, b)
	}
}
