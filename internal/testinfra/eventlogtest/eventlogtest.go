// Package eventlogtest gives tests the shop's serde on an embedded schema
// registry of their own.
package eventlogtest

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"shopstream/internal/devinfra/embedded/registry"
	"shopstream/internal/platform/eventlog"
	"shopstream/schemas"
)

// Serde returns a serde of the shop's schema catalogue on an embedded
// registry of tb's own (its file in tb's temporary directory, stopped when
// tb ends), and a client of that registry.
func Serde(tb testing.TB) (*eventlog.Serde, *sr.Client) {
	tb.Helper()
	srv, err := registry.Start(registry.Config{File: tb.TempDir() + "/registry.json"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = srv.Stop(context.Background()) })
	cl, err := sr.NewClient(sr.URLs(srv.URL()))
	if err != nil {
		tb.Fatal(err)
	}
	cat, err := schemas.Load()
	if err != nil {
		tb.Fatal(err)
	}
	return eventlog.NewSerde(cl, cat), cl
}
