package ferret

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/jackc/pgx/v5"

	"shopstream/internal/devinfra/embedded/postgres"
)

// levelRecorder records the levels of all records it receives.
type levelRecorder struct {
	mu     sync.Mutex
	levels []slog.Level
}

func (r *levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *levelRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.levels = append(r.levels, rec.Level)
	return nil
}
func (r *levelRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *levelRecorder) WithGroup(string) slog.Handler      { return r }

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}

func TestRestartKeepsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	dir := t.TempDir() + "/data" // not yet existing: Start must create it
	rec := &levelRecorder{}
	cfg := Config{Dir: dir, Logger: slog.New(rec)}

	t0 := time.Now()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Logf("first start took %v, uri %s", time.Since(t0), s.URI())
	if !strings.HasPrefix(s.URI(), "mongodb://127.0.0.1:") || !strings.HasSuffix(s.URI(), "/") {
		t.Errorf("unexpected URI %q", s.URI())
	}

	c := connect(t, s.URI())
	if _, err := c.Database("shop").Collection("orders").InsertOne(ctx, bson.D{{Key: "_id", Value: "o-1"}, {Key: "total", Value: 42}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatalf("disconnect: %v", err)
	}

	t0 = time.Now()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("stop took %v", time.Since(t0))
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("second stop: %v", err)
	}

	t0 = time.Now()
	s2, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Logf("restart took %v", time.Since(t0))
	defer func() {
		if err := s2.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()

	c2 := connect(t, s2.URI())
	defer func() { _ = c2.Disconnect(context.Background()) }()
	var got struct {
		ID    string `bson:"_id"`
		Total int    `bson:"total"`
	}
	if err := c2.Database("shop").Collection("orders").FindOne(ctx, bson.D{{Key: "_id", Value: "o-1"}}).Decode(&got); err != nil {
		t.Fatalf("find after restart: %v", err)
	}
	if got.ID != "o-1" || got.Total != 42 {
		t.Fatalf("got %+v after restart", got)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, l := range rec.levels {
		if l < slog.LevelError {
			t.Errorf("logger received a %v record; want Error only", l)
		}
	}
	t.Logf("logger received %d records (Error)", len(rec.levels))
}

func TestStartErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := Start(ctx, Config{}); err == nil {
		t.Error("Start without Dir: want error")
	}

	s, err := Start(ctx, Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer func() { _ = s.Stop(context.Background()) }()

	// Same fixed address while s is listening must fail, not hang.
	addr := strings.TrimSuffix(strings.TrimPrefix(s.URI(), "mongodb://"), "/")
	if _, err := Start(ctx, Config{Dir: t.TempDir(), Addr: addr}); err == nil {
		t.Errorf("Start on busy address %s: want error", addr)
	}
}

// On the PostgreSQL backend every index (the implicit _id one included)
// gets its push-down twin, so an equality look-up is an index scan whatever
// the collection's size; data survives a restart of the server.
func TestPostgreSQLBackendIndexesLookups(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	pg, err := postgres.Start(ctx, postgres.Config{Dir: t.TempDir()})
	if errors.Is(err, postgres.ErrBinariesNotFound) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })
	u, err := pg.Database(ctx, "ferretdb")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(ctx, Config{PostgreSQLURL: u})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Backend() != "postgresql" {
		t.Fatalf("backend %q", srv.Backend())
	}
	requiresThePassword(ctx, t, srv.URI())
	c := connect(t, srv.URI())
	coll := c.Database("shop").Collection("orders")
	fill(ctx, t, coll, 300)
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "customer_id", Value: 1}, {Key: "placed_at", Value: -1}}}); err != nil {
		t.Fatal(err)
	}
	if err := srv.SyncIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var table string
	if err := conn.QueryRow(ctx, `SELECT _jsonb->>'table' FROM shop._ferretdb_database_metadata WHERE _jsonb->>'_id' = 'orders'`).Scan(&table); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"_id", "customer_id"} {
		var plan []string
		rows, err := conn.Query(ctx, fmt.Sprintf(`EXPLAIN SELECT _jsonb FROM shop.%s WHERE _jsonb->%s @> $1`, pgx.Identifier{table}.Sanitize(), quoteLiteral(field)), `"x"`)
		if err != nil {
			t.Fatal(err)
		}
		if plan, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(plan, "\n"), "ferret_pd_") {
			t.Errorf("look-up by %s is not served by a push-down index:\n%s", field, strings.Join(plan, "\n"))
		}
	}
	var d bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: docID(7)}}).Decode(&d); err != nil || d["price_cents"] != int64(8999+7) {
		t.Fatalf("FindOne: %v %v", d, err)
	}
	_ = c.Disconnect(ctx)
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	srv, err = Start(ctx, Config{PostgreSQLURL: u})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(ctx)
	c = connect(t, srv.URI())
	defer c.Disconnect(ctx)
	if n, err := c.Database("shop").Collection("orders").CountDocuments(ctx, bson.D{{Key: "customer_id", Value: customerID(3)}}); err != nil || n != 10 {
		t.Fatalf("after restart: %d documents of customer 3, %v", n, err)
	}
}

// requiresThePassword checks that the server at uri (which carries the
// password) answers a client with it, and refuses one without it or with
// another password.
func requiresThePassword(ctx context.Context, t *testing.T, uri string) {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := u.User.Password(); !ok || u.Query().Get("authMechanism") != "PLAIN" {
		t.Fatalf("URI %s carries no password", u.Redacted())
	}
	try := func(uri string) error {
		c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(3 * time.Second))
		if err != nil {
			return err
		}
		defer func() { _ = c.Disconnect(ctx) }()
		_, err = c.Database("shop").Collection("probe").InsertOne(ctx, bson.M{"x": 1})
		return err
	}
	if err := try(uri); err != nil {
		t.Fatalf("with the password: %v", err)
	}
	anon := *u
	anon.User = nil
	q := anon.Query()
	q.Del("authMechanism")
	anon.RawQuery = q.Encode()
	wrong := *u
	wrong.User = url.UserPassword(u.User.Username(), "not-the-password")
	for name, v := range map[string]string{"no credentials": anon.String(), "a wrong password": wrong.String()} {
		if err := try(v); err == nil {
			t.Errorf("a client with %s wrote a document", name)
		} else {
			t.Logf("a client with %s: %v", name, err)
		}
	}
}
