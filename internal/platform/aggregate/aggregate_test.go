package aggregate_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/aggregate"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/idempotency"
	"shopstream/internal/platform/outbox"
	"shopstream/internal/platform/pgdb"
	"shopstream/internal/testinfra/eventlogtest"
	"shopstream/internal/testinfra/testbackend"
	"shopstream/producers/catalog"
	"shopstream/schemas"
)

// roundTrips counts the client's round trips to PostgreSQL: each time it
// writes after having read (or writes first), it starts one. Those of the
// NOTIFY that outbox.Notify sends in the background (when no relay is
// active in this process, as in these tests), and the pool's own ping of a
// connection idle for over a second (pgxpool's default ShouldPing, which a
// loaded CI machine meets between two commands), are counted apart.
type roundTrips struct {
	n, notify atomic.Int64
	mu        sync.Mutex
	sql       []string // statements, in order
}

type countingConn struct {
	net.Conn
	rt      *roundTrips
	reading atomic.Bool // the last operation was a read that returned bytes
	notify  atomic.Bool // the next round trip is outbox.Notify's
	ping    atomic.Bool // the next round trip is the pool's health check
}

func (c *countingConn) Write(p []byte) (int, error) {
	if c.reading.Swap(false) {
		if c.notify.Swap(false) || c.ping.Swap(false) {
			c.rt.notify.Add(1)
		} else {
			c.rt.n.Add(1)
		}
	}
	return c.Conn.Write(p)
}

// tracer logs the statements and marks the connection that sends a NOTIFY.
type tracer struct{ rt *roundTrips }

func (tr tracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if strings.Contains(data.SQL, "pg_notify") {
		conn.PgConn().Conn().(*countingConn).notify.Store(true)
		return ctx
	}
	tr.rt.log(data.SQL)
	return ctx
}

func (tracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (tr tracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	var qs []string
	for _, q := range data.Batch.QueuedQueries {
		qs = append(qs, q.SQL)
	}
	tr.rt.log("batch [" + strings.Join(qs, "; ") + "]")
	return ctx
}

func (tracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (tracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (rt *roundTrips) log(sql string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.sql = append(rt.sql, strings.Join(strings.Fields(sql), " "))
}

func (rt *roundTrips) take() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	s := rt.sql
	rt.sql = nil
	return s
}

// Read marks a read only once bytes came back: pgconn starts a background
// reader when a write takes over 15 ms (a loaded CI machine), and that
// reader's Read, blocked until the server answers, is no round trip.
func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.reading.Store(true)
	}
	return n, err
}

type fixture struct {
	pool  *pgxpool.Pool
	rt    *roundTrips
	serde *eventlog.Serde
	bus   *command.Bus
}

func start(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	url := testbackend.PostgresURL(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{rt: &roundTrips{}}
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cc := &countingConn{Conn: c, rt: f.rt}
		cc.reading.Store(true)
		return cc, nil
	}
	cfg.ConnConfig.Tracer = tracer{f.rt}
	cfg.ShouldPing = func(_ context.Context, p pgxpool.ShouldPingParams) bool {
		if p.IdleDuration <= time.Second { // pgxpool's default
			return false
		}
		p.Conn.PgConn().Conn().(*countingConn).ping.Store(true)
		return true
	}
	cfg.MaxConns = 8
	if f.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.pool.Close)
	migrations := append(append(outbox.Migrations(), idempotency.Migrations()...), catalog.Migrations()...)
	if _, err := pgdb.Migrate(ctx, f.pool, migrations); err != nil {
		t.Fatal(err)
	}
	serde, _ := eventlogtest.Serde(t)
	f.serde = serde
	if err := f.serde.RegisterAll(ctx); err != nil {
		t.Fatal(err)
	}
	f.bus = command.NewBus(idempotency.Middleware(func(command.Command) *pgxpool.Pool { return f.pool }), command.Retry(20))
	catalog.NewService(f.pool, f.serde).Register(f.bus)
	return f
}

func (f *fixture) pending(t *testing.T) int64 {
	t.Helper()
	n, err := outbox.Pending(context.Background(), f.pool)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A command on one aggregate costs two round trips to PostgreSQL: the read
// of the state row, and one pipelined batch with the state row, the outbox
// rows and the idempotency key, committed as one implicit transaction; the
// registration of a new id (Create) only the batch.
// (Statements are prepared once per connection, by pgx's statement cache:
// the warm-up pays for that.)
func TestUpdateRoundTrips(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	// Two connections (the command's and outbox.Notify's), each warmed up
	// with every statement; each command starts on a quiet pool.
	f.pool.Close()
	cfg := f.pool.Config()
	cfg.MaxConns = 2
	var err error
	if f.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.pool.Close)
	f.bus = command.NewBus(idempotency.Middleware(func(command.Command) *pgxpool.Pool { return f.pool }), command.Retry(20))
	catalog.NewService(f.pool, f.serde).Register(f.bus)
	quiet := func() {
		for idle := 0; idle < 3; time.Sleep(10 * time.Millisecond) {
			if f.pool.Stat().AcquiredConns() == 0 {
				idle++
			} else {
				idle = 0
			}
		}
	}
	key := func() *command.IdempotencyKey { return &command.IdempotencyKey{Key: uuid.NewString(), Hash: "h"} }
	run := func(meta command.Meta, cmd command.Command) int64 {
		t.Helper()
		quiet()
		f.rt.take()
		before := f.rt.n.Load()
		if _, err := f.bus.Dispatch(ctx, meta, cmd); err != nil {
			t.Fatalf("%T: %v", cmd, err)
		}
		return f.rt.n.Load() - before
	}
	for range 4 {
		warm := uuid.NewString()
		run(command.Meta{Idempotency: key()}, catalog.RegisterProduct{ProductID: warm, Title: "Maillot", PriceCents: 8999, Quantity: 3})
		run(command.Meta{Idempotency: key()}, catalog.RestockProduct{ProductID: warm, Quantity: 1})
		run(command.Meta{}, catalog.RegisterProduct{ProductID: uuid.NewString(), Title: "Maillot", PriceCents: 8999, Quantity: 3})
		run(command.Meta{}, catalog.RestockProduct{ProductID: warm, Quantity: 1})
	}

	id := uuid.NewString()
	for _, c := range []struct {
		name string
		meta command.Meta
		cmd  command.Command
		want int64
	}{
		// A new id: Create decides without reading the row.
		{"register", command.Meta{}, catalog.RegisterProduct{ProductID: id, Title: "Maillot", PriceCents: 8999, Quantity: 3}, 1},
		{"restock", command.Meta{}, catalog.RestockProduct{ProductID: id, Quantity: 2}, 2},
		// The key is looked up first, by the middleware: one more.
		{"restock with an idempotency key", command.Meta{Idempotency: key()}, catalog.RestockProduct{ProductID: id, Quantity: 2}, 3},
	} {
		got := run(c.meta, c.cmd)
		t.Logf("%s: %d round trips: %s", c.name, got, strings.Join(f.rt.take(), " → "))
		if got > c.want {
			t.Errorf("%s: %d round trips, want at most %d", c.name, got, c.want)
		}
	}
}

// Create on an id that exists after all writes nothing on the zero state:
// its INSERT fails, and it runs as Update on the stored state, answering
// as Update would (registering a registered product is refused, once).
func TestCreateOfAnExistingIDRunsAsUpdate(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	id := uuid.NewString()
	reg := catalog.RegisterProduct{ProductID: id, Title: "Maillot", PriceCents: 8999, Quantity: 3}
	if _, err := f.bus.Dispatch(ctx, command.Meta{}, reg); err != nil {
		t.Fatal(err)
	}
	before := f.pending(t)
	_, again := f.bus.Dispatch(ctx, command.Meta{}, reg)
	var version int64
	if err := f.pool.QueryRow(ctx, `SELECT version FROM catalog.products WHERE id = $1`, id).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if after := f.pending(t); after != before || version != 1 {
		t.Errorf("the second registration wrote: outbox %d → %d rows, product at version %d (want unchanged, 1)", before, after, version)
	}
	if again == nil || errors.Is(again, command.ErrVersion) {
		t.Errorf("second registration of %s: %v; want Decide's refusal on the stored state, not a version race", id, again)
	}
	t.Logf("second registration: %v", again)
}

// A decide that loses the race against a concurrent command on the same
// aggregate fails with command.ErrVersion and writes nothing: neither its
// state nor its events nor its idempotency key. For a new aggregate and for
// an existing one.
func TestLostRaceWritesNothing(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	store := aggregate.NewStore[catalog.Product](f.pool, f.serde, "catalog.products", catalog.Source)
	id := uuid.NewString()
	decide := aggregate.Rule(catalog.Decide, catalog.Evolve)
	created := func(catalog.Product, int64) command.Result { return command.Created("/products/"+id, id) }
	for _, c := range []struct {
		name   string
		first  catalog.Command
		racing catalog.Command
	}{
		{"new aggregate", catalog.RegisterProduct{ProductID: id, Title: "Maillot", PriceCents: 8999, Quantity: 3},
			catalog.RegisterProduct{ProductID: id, Title: "Maillot", PriceCents: 8999, Quantity: 3}},
		{"existing aggregate", catalog.RestockProduct{ProductID: id, Quantity: 1}, catalog.RestockProduct{ProductID: id, Quantity: 2}},
	} {
		before := f.pending(t)
		_, version0, _, _ := store.Load(ctx, id)
		key := &command.IdempotencyKey{Key: uuid.NewString(), Hash: "h"}
		raced := false
		_, err := store.Update(ctx, id, command.Meta{Idempotency: key}, func(s catalog.Product, v int64) (catalog.Product, []schemas.Event, error) {
			if !raced { // a concurrent command commits between the read and the write
				raced = true
				if _, err := store.Update(ctx, id, command.Meta{}, decide(c.racing), created); err != nil {
					t.Fatalf("%s: racing command: %v", c.name, err)
				}
			}
			return decide(c.first)(s, v)
		}, created)
		if !errors.Is(err, command.ErrVersion) {
			t.Fatalf("%s: got %v, want ErrVersion", c.name, err)
		}
		if got := f.pending(t); got != before+1 {
			t.Fatalf("%s: outbox grew by %d rows, want 1 (the racing command's)", c.name, got-before)
		}
		if _, v, _, _ := store.Load(ctx, id); v != version0+1 {
			t.Fatalf("%s: version %d, want %d", c.name, v, version0+1)
		}
		var n int
		if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM idempotency.keys WHERE key = $1`, key.Key).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%s: key recorded %d times (%v), want none", c.name, n, err)
		}
	}
}

// Concurrent restocks of one product all succeed through the bus's retry
// of version races, and every unit and every event is counted once.
func TestConcurrentUpdatesOfOneAggregate(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	id := uuid.NewString()
	if res, err := f.bus.Dispatch(ctx, command.Meta{}, catalog.RegisterProduct{ProductID: id, Title: "Maillot", PriceCents: 8999, Quantity: 1}); err != nil || res.Status != http.StatusCreated {
		t.Fatalf("register: %v %v", res, err)
	}
	const n = 40
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range n {
		wg.Go(func() {
			if _, err := f.bus.Dispatch(ctx, command.Meta{}, catalog.RestockProduct{ProductID: id, Quantity: 1}); err != nil {
				failed.Add(1)
				t.Errorf("restock: %v", err)
			}
		})
	}
	wg.Wait()
	var stock, version int64
	if err := f.pool.QueryRow(ctx, `SELECT (state->>'stock')::bigint, version FROM catalog.products WHERE id = $1`, id).Scan(&stock, &version); err != nil {
		t.Fatal(err)
	}
	if stock != 1+n || version != 1+n {
		t.Fatalf("stock %d at version %d, want %d at %d", stock, version, 1+n, 1+n)
	}
	if got := f.pending(t); got != 1+n {
		t.Fatalf("outbox holds %d rows, want %d", got, 1+n)
	}
	// Every event carries the version it produced, once each.
	rows, err := f.pool.Query(ctx, `SELECT headers FROM outbox.records ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil || len(versions) != 1+n {
		t.Fatalf("%d rows (%v)", len(versions), err)
	}
}
