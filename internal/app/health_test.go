package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"shopstream/internal/app"
	"shopstream/internal/devinfra/devshop"
	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/edge/gateway"
)

// health is one answer of a health route.
type health struct {
	code        int
	contentType string
	retryAfter  string
	body        struct {
		Status     any               `json:"status"` // "ok", or 503 in a problem
		Type       string            `json:"type"`
		Dependency string            `json:"dependency"`
		Checks     map[string]string `json:"checks"`
	}
}

func getHealth(t *testing.T, base, path string) health {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	h := health{code: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), retryAfter: resp.Header.Get("Retry-After")}
	if err := json.Unmarshal(b, &h.body); err != nil {
		t.Fatalf("GET %s: %d %q: %v", path, resp.StatusCode, b, err)
	}
	return h
}

// startInstance runs `shop run --components=components` on the stack,
// with edit applied to its config, and returns its base URL (the admin
// listener's is startInstanceWithAdmin's); the instance stops at the end of the
// test.
func startInstance(t *testing.T, e devstack.Endpoints, components []string, edit func(*app.Config)) string {
	base, _ := startInstanceWithAdmin(t, e, components, edit)
	return base
}

// startInstanceWithAdmin is startInstance, returning the admin
// listener's URL too.
func startInstanceWithAdmin(t *testing.T, e devstack.Endpoints, components []string, edit func(*app.Config)) (base, admin string) {
	t.Helper()
	cfg := devshop.Config(e, devstack.Secrets{TokenSecret: strings.Repeat("s", 32)}, "127.0.0.1:0", slog.New(slog.NewTextHandler(testLogOutput(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	cfg.Components = components
	cfg.DevEndpoints = nil
	if edit != nil {
		edit(&cfg)
	}
	ready := make(chan [2]string, 1)
	cfg.OnReady = func(addr, admin string) { ready <- [2]string{addr, admin} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("instance %v: %v", components, err)
		}
	})
	select {
	case addrs := <-ready:
		return "http://" + addrs[0], "http://" + addrs[1]
	case err := <-done:
		done <- nil
		t.Fatalf("instance %v stopped: %v", components, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("instance %v not ready in 60 s", components)
	}
	return "", ""
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestReadinessChecksWhatTheComponentsNeed: with MongoDB unreachable, an
// email instance is ready (it needs PostgreSQL, Kafka, the registry and
// SMTP, not MongoDB), a gateway instance is not (503 problem naming
// mongodb, with Retry-After), and both are alive: /livez pings nothing.
// With MongoDB up, the gateway is ready and checks only what it needs.
// /readyz answers within gateway.CheckTimeout (2 s) even when a ping hangs.
func TestReadinessChecksWhatTheComponentsNeed(t *testing.T) {
	ctx := context.Background()
	stack, err := devstack.Start(ctx, devstack.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stack.Stop(context.Background()) })
	e := stack.Endpoints
	deadMongo := func(c *app.Config) { c.MongoURI = "mongodb://" + closedAddr(t) + "/?connectTimeoutMS=500" }

	checked := func(h health) []string { return slices.Sorted(maps.Keys(h.body.Checks)) }
	alive := func(t *testing.T, base string) {
		t.Helper()
		if h := getHealth(t, base, "/livez"); h.code != http.StatusOK || h.body.Status != "ok" {
			t.Errorf("/livez: %d %v, want 200 ok", h.code, h.body)
		}
	}

	t.Run("email without mongodb", func(t *testing.T) {
		base := startInstance(t, e, []string{app.Email}, deadMongo)
		began := time.Now()
		h := getHealth(t, base, "/readyz")
		t.Logf("email /readyz with MongoDB down: %d in %v, checks %v", h.code, time.Since(began).Round(time.Millisecond), h.body.Checks)
		if h.code != http.StatusOK || h.body.Status != "ok" {
			t.Errorf("/readyz: %d %+v, want 200", h.code, h.body)
		}
		if got, want := checked(h), []string{"email", "kafka", "postgresql", "schema-registry", "smtp"}; !slices.Equal(got, want) {
			t.Errorf("/readyz checks %v, want %v", got, want)
		}
		if h := getHealth(t, base, "/healthz"); h.code != http.StatusOK {
			t.Errorf("/healthz (alias of /readyz): %d, want 200", h.code)
		}
		alive(t, base)
	})

	// An instance connects only what its components need (the component
	// table): projectors start and are ready with no PostgreSQL at all.
	t.Run("projectors without postgresql", func(t *testing.T) {
		base := startInstance(t, e, []string{app.ProjectorProducts, app.ProjectorOrders}, func(c *app.Config) {
			c.PostgresURL = "postgres://shop@" + closedAddr(t) + "/shop?connect_timeout=1"
		})
		h := getHealth(t, base, "/readyz")
		if h.code != http.StatusOK {
			t.Errorf("/readyz: %d %+v, want 200", h.code, h.body)
		}
		if got, want := checked(h), []string{"kafka", "mongodb", "projector-orders", "projector-products", "schema-registry"}; !slices.Equal(got, want) {
			t.Errorf("/readyz checks %v, want %v", got, want)
		}
	})

	t.Run("gateway without mongodb", func(t *testing.T) {
		base, admin := startInstanceWithAdmin(t, e, []string{app.Gateway}, deadMongo)
		began := time.Now()
		h := getHealth(t, base, "/readyz")
		t.Logf("gateway /readyz with MongoDB down: %d in %v, dependency %q, checks %v", h.code, time.Since(began).Round(time.Millisecond), h.body.Dependency, h.body.Checks)
		switch {
		case time.Since(began) > gateway.CheckTimeout+time.Second:
			t.Errorf("/readyz took %v, want at most the check timeout %v", time.Since(began), gateway.CheckTimeout)
		case h.code != http.StatusServiceUnavailable:
			t.Errorf("/readyz: %d, want 503", h.code)
		case h.contentType != "application/problem+json" || h.body.Type != "https://shopstream.dev/problems/unavailable":
			t.Errorf("/readyz: %q type %q, want an unavailable problem", h.contentType, h.body.Type)
		case h.body.Dependency != "mongodb":
			t.Errorf("/readyz names %q, want mongodb", h.body.Dependency)
		case h.retryAfter == "":
			t.Error("/readyz: 503 without Retry-After")
		case h.body.Checks["mongodb"] == "ok" || h.body.Checks["postgresql"] != "ok":
			t.Errorf("/readyz checks %v, want mongodb failing and postgresql ok", h.body.Checks)
		}
		if h := getHealth(t, base, "/healthz"); h.code != http.StatusServiceUnavailable {
			t.Errorf("/healthz (alias of /readyz): %d, want 503", h.code)
		}
		// The public port says which dependency is down, not the driver's
		// error; the admin listener gives it.
		if got := h.body.Checks["mongodb"]; got != "unavailable" {
			t.Errorf("public /readyz: mongodb %q, want \"unavailable\" without the error", got)
		}
		if d := getHealth(t, admin, "/readyz"); d.code != http.StatusServiceUnavailable || d.body.Checks["mongodb"] == "unavailable" || d.body.Checks["mongodb"] == "ok" {
			t.Errorf("admin /readyz: %d mongodb %q, want 503 with the error", d.code, d.body.Checks["mongodb"])
		}
		alive(t, base)
	})

	t.Run("gateway", func(t *testing.T) {
		base := startInstance(t, e, []string{app.Gateway}, nil)
		h := getHealth(t, base, "/readyz")
		if h.code != http.StatusOK {
			t.Errorf("/readyz: %d %+v, want 200", h.code, h.body)
		}
		// Not Kafka nor the registry: writes go to the outbox, reads to
		// MongoDB. (Its HTTP server is the component: it answers.)
		if got, want := checked(h), []string{"mongodb", "postgresql"}; !slices.Equal(got, want) {
			t.Errorf("/readyz checks %v, want %v", got, want)
		}
		alive(t, base)
	})
}
