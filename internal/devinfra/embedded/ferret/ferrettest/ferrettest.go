// Package ferrettest starts the embedded FerretDB for tests and
// benchmarks, on either backend, the way shop dev starts it.
package ferrettest

import (
	"context"
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/devinfra/embedded/ferret"
	"shopstream/internal/devinfra/embedded/postgres"
)

// The backends Start knows.
const (
	PostgreSQL = "postgresql" // FerretDB on a private embedded PostgreSQL cluster, as shop dev runs it
	SQLite     = "sqlite"     // FerretDB's SQLite backend: no PostgreSQL needed, look-ups scan
)

// Start starts FerretDB on backend (PostgreSQL or SQLite; "" is
// PostgreSQL), stopped when tb ends. On PostgreSQL it runs in the database
// shop dev gives it (devstack.MongoDatabase) of a cluster of its own;
// without the PostgreSQL server binaries tb is skipped, saying so. Any
// other backend fails tb, naming the two.
func Start(tb testing.TB, backend string) *ferret.Server {
	tb.Helper()
	ctx := context.Background()
	cfg := ferret.Config{Dir: tb.TempDir()}
	switch backend {
	case "", PostgreSQL:
		pg, err := postgres.Start(ctx, postgres.Config{Dir: tb.TempDir()})
		if errors.Is(err, postgres.ErrBinariesNotFound) {
			tb.Skip(err)
		}
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = pg.Stop(context.Background()) })
		if cfg.PostgreSQLURL, err = pg.OwnDatabase(ctx, devstack.MongoDatabase, devstack.MongoRole); err != nil {
			tb.Fatal(err)
		}
	case SQLite:
	default:
		tb.Fatalf("FerretDB backend %q: want %q or %q", backend, PostgreSQL, SQLite)
	}
	srv, err := ferret.Start(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return srv
}

// Connect returns a client of srv, disconnected when tb ends; opts apply
// after the server's URI.
func Connect(tb testing.TB, srv *ferret.Server, opts ...*options.ClientOptions) *mongo.Client {
	tb.Helper()
	mc, err := mongo.Connect(append([]*options.ClientOptions{options.Client().ApplyURI(srv.URI())}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
	return mc
}
