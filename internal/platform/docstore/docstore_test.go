package docstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/internal/devinfra/embedded/ferret"
	"shopstream/internal/devinfra/embedded/ferret/ferrettest"
	"shopstream/internal/devinfra/embedded/postgres"

	"shopstream/internal/testinfra/testenv"
)

// testTimeout caps each bulk run, and stallTimeout is the longest we wait for
// any single write command, so that a FerretDB deadlock fails the test with a
// clear message instead of hanging CI. (FerretDB v1.24's SQLite backend is
// slow but steady: each chunk of 50 upserts takes well under a second.)
const (
	testTimeout  = 120 * time.Second
	stallTimeout = 30 * time.Second
)

// errStalled is the cancel cause set by the stall watchdog.
var errStalled = errors.New("no write command completed within the stall timeout")

// serverURI is the embedded FerretDB shared by all tests in this package.
var serverURI string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "docstore-ferret-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "docstore tests: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t0 := time.Now()
	cfg := ferret.Config{Dir: dir}
	// SHOP_DOCSTORE_BACKEND=postgresql runs every test on FerretDB's
	// PostgreSQL backend (an embedded PostgreSQL), as shop dev does.
	if os.Getenv("SHOP_DOCSTORE_BACKEND") == "postgresql" {
		pg, err := postgres.Start(ctx, postgres.Config{Dir: dir + "/pg"})
		if err != nil {
			fmt.Fprintln(os.Stderr, "docstore tests: start embedded PostgreSQL:", err)
			return 1
		}
		defer func() { _ = pg.Stop(context.Background()) }()
		if cfg.PostgreSQLURL, err = pg.Database(ctx, "ferretdb"); err != nil {
			fmt.Fprintln(os.Stderr, "docstore tests:", err)
			return 1
		}
	}
	srv, err := ferret.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "docstore tests: start embedded FerretDB:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "docstore tests: embedded FerretDB (%s) at %s started in %v\n", srv.Backend(), srv.URI(), time.Since(t0))
	serverURI = srv.URI()
	defer func() {
		stopCtx, stopCancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer stopCancel()
		if err := srv.Stop(stopCtx); err != nil {
			fmt.Fprintln(os.Stderr, "docstore tests: stop embedded FerretDB:", err)
		}
	}()
	return m.Run()
}

// stmtRecorder counts write statements per insert/update/delete command as
// seen on the wire by the driver.
type stmtRecorder struct {
	mu       sync.Mutex
	commands map[string]int // command name -> number of commands
	stmts    int            // total statements
	max      int            // most statements in one command
	lastDone time.Time      // when the last command finished (success or failure)
	maxCmd   string
	missing  []string // write commands whose statement array was not found
}

var stmtField = map[string]string{"insert": "documents", "update": "updates", "delete": "deletes"}

func (r *stmtRecorder) started(_ context.Context, e *event.CommandStartedEvent) {
	field, ok := stmtField[e.CommandName]
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.commands == nil {
		r.commands = map[string]int{}
	}
	r.commands[e.CommandName]++
	arr, ok := e.Command.Lookup(field).ArrayOK()
	if !ok {
		r.missing = append(r.missing, e.CommandName)
		return
	}
	vals, err := arr.Values()
	if err != nil {
		r.missing = append(r.missing, e.CommandName+": "+err.Error())
		return
	}
	n := len(vals)
	r.stmts += n
	if n > r.max {
		r.max, r.maxCmd = n, e.CommandName
	}
}

func (r *stmtRecorder) finished() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastDone = time.Now()
}

func (r *stmtRecorder) sinceLastDone() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return time.Since(r.lastDone)
}

// guard returns a context that is canceled after testTimeout, or with cause
// errStalled as soon as no command has finished for stallTimeout.
func (r *stmtRecorder) guard(tb testing.TB) context.Context {
	r.finished() // start the stall clock now
	ctx, cancel := context.WithCancelCause(context.Background())
	ctx, cancelT := context.WithTimeout(ctx, testTimeout)
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if r.sinceLastDone() > stallTimeout {
					cancel(errStalled)
					return
				}
			}
		}
	}()
	tb.Cleanup(func() { close(done); cancelT(); cancel(nil) })
	return ctx
}

func (r *stmtRecorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.commands, r.stmts, r.max, r.maxCmd, r.missing = nil, 0, 0, "", nil
	r.lastDone = time.Now()
}

// check fails t if any write command carried more than limit statements or
// could not be inspected.
func (r *stmtRecorder) check(t testing.TB, limit int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.missing) > 0 {
		t.Errorf("command monitor could not count statements of %v", r.missing)
	}
	if r.max > limit {
		t.Errorf("a %s command carried %d statements; want at most %d", r.maxCmd, r.max, limit)
	}
}

// newStore connects a fresh client with a command monitor and returns a
// Store on a database unique to the test.
func newStore(tb testing.TB, opts ...Option) (*Store, *stmtRecorder) {
	tb.Helper()
	return newStoreAt(tb, serverURI, opts...)
}

// newStoreAt is newStore on the server at uri.
func newStoreAt(tb testing.TB, uri string, opts ...Option) (*Store, *stmtRecorder) {
	tb.Helper()
	rec := &stmtRecorder{}
	client, err := mongo.Connect(options.Client().ApplyURI(uri).
		SetMonitor(&event.CommandMonitor{
			Started:   rec.started,
			Succeeded: func(context.Context, *event.CommandSucceededEvent) { rec.finished() },
			Failed:    func(context.Context, *event.CommandFailedEvent) { rec.finished() },
		}))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	// FerretDB accepts only [A-Za-z0-9_-] in database names, up to 63 bytes.
	name := "t_" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, tb.Name())
	if len(name) > 63 {
		name = name[:63]
	}
	return New(client.Database(name), opts...), rec
}

// failOnHang fails t, with a clear hint if ctx was canceled by a guard.
func failOnHang(ctx context.Context, t testing.TB, what string, err error) {
	t.Helper()
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errStalled):
		t.Fatalf("%s: no write command finished for %v: FerretDB probably deadlocked (too many write statements in flight?): %v", what, stallTimeout, err)
	case errors.Is(cause, context.DeadlineExceeded):
		t.Fatalf("%s did not finish within %v: FerretDB hung or is far too slow: %v", what, testTimeout, err)
	}
	t.Fatalf("%s: %v", what, err)
}

func upsertModels(n, version int) []mongo.WriteModel {
	models := make([]mongo.WriteModel, n)
	for i := range n {
		id := fmt.Sprintf("sku-%05d", i)
		models[i] = mongo.NewReplaceOneModel().
			SetFilter(bson.D{{Key: "_id", Value: id}}).
			SetReplacement(bson.D{{Key: "_id", Value: id}, {Key: "qty", Value: i}, {Key: "v", Value: version}}).
			SetUpsert(true)
	}
	return models
}

func TestBulkUpsert5000(t *testing.T) {
	testenv.Slow(t, "5,000 upserts into FerretDB, about 80 s")
	const n = 5000
	s, rec := newStore(t)
	models := upsertModels(n, 1)

	for run := 1; run <= 2; run++ {
		rec.reset()
		ctx := rec.guard(t) // fresh 120 s cap + stall watchdog per run
		t0 := time.Now()
		res, err := s.BulkWrite(ctx, "stock", models)
		if err != nil {
			failOnHang(ctx, t, fmt.Sprintf("run %d: bulk upsert of %d docs", run, n), err)
		}
		elapsed := time.Since(t0)
		t.Logf("run %d: %d upserts in %v (%.0f/s), result %+v, commands %v, max stmts/command %d",
			run, n, elapsed, n/elapsed.Seconds(), res, rec.commands, rec.max)

		want := Result{Upserted: n}
		if run == 2 {
			want = Result{Matched: n} // identical replacement: nothing modified
		}
		if res.Matched != want.Matched || res.Upserted != want.Upserted || res.Inserted != 0 || res.Deleted != 0 {
			t.Errorf("run %d: result %+v; want matched %d, upserted %d", run, res, want.Matched, want.Upserted)
		}
		if run == 2 && res.Modified != 0 {
			t.Logf("run %d: server reported %d modified for identical replacements", run, res.Modified)
		}

		cnt, err := s.Collection("stock").CountDocuments(ctx, bson.D{})
		if err != nil {
			failOnHang(ctx, t, "count", err)
		}
		if cnt != n {
			t.Errorf("run %d: count %d; want %d", run, cnt, n)
		}

		rec.check(t, DefaultChunk)
		if rec.stmts != n {
			t.Errorf("run %d: monitor saw %d statements; want %d", run, rec.stmts, n)
		}
		if got, want := rec.commands["update"], (n+DefaultChunk-1)/DefaultChunk; got != want {
			t.Errorf("run %d: %d update commands; want %d", run, got, want)
		}
	}
}

func TestChunkingMixedModels(t *testing.T) {
	const chunk = 7
	s, rec := newStore(t, WithChunk(chunk))
	ctx := rec.guard(t)
	coll := "mixed"

	// Seed 30 docs via inserts (5 chunks of <= 7).
	var models []mongo.WriteModel
	for i := range 30 {
		models = append(models, mongo.NewInsertOneModel().SetDocument(bson.D{{Key: "_id", Value: i}, {Key: "n", Value: i}}))
	}
	res, err := s.BulkWrite(ctx, coll, models)
	if err != nil {
		failOnHang(ctx, t, "seed", err)
	}
	if res.Inserted != 30 {
		t.Fatalf("seed: %+v; want 30 inserted", res)
	}

	// Mixed: updates on 0..9, deletes of 10..19, inserts of 30..39, upserts 40..44.
	models = models[:0]
	for i := range 10 {
		models = append(models,
			mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: i}}).SetUpdate(bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 100}}}}),
			mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: "_id", Value: 10 + i}}),
			mongo.NewInsertOneModel().SetDocument(bson.D{{Key: "_id", Value: 30 + i}}),
		)
	}
	for i := 40; i < 45; i++ {
		models = append(models, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: i}}).SetReplacement(bson.D{{Key: "n", Value: i}}).SetUpsert(true))
	}
	rec.reset()
	res, err = s.BulkWrite(ctx, coll, models)
	if err != nil {
		failOnHang(ctx, t, "mixed", err)
	}
	want := Result{Matched: 10, Modified: 10, Upserted: 5, Inserted: 10, Deleted: 10}
	if res != want {
		t.Errorf("mixed: %+v; want %+v", res, want)
	}
	rec.check(t, chunk)
	if rec.stmts != len(models) {
		t.Errorf("monitor saw %d statements; want %d", rec.stmts, len(models))
	}
	t.Logf("mixed: %d models -> commands %v, max stmts/command %d", len(models), rec.commands, rec.max)

	cnt, err := s.Collection(coll).CountDocuments(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if cnt != 30-10+10+5 {
		t.Errorf("count %d; want 35", cnt)
	}
}

func TestChunksInOrder(t *testing.T) {
	// Chunk 1 sets v=1 for _id "x", chunk 2 sets v=2: chunks are applied in
	// order, so the final value must be 2.
	s, rec := newStore(t, WithChunk(1))
	ctx := rec.guard(t)
	var models []mongo.WriteModel
	for v := 1; v <= 5; v++ {
		models = append(models, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: "x"}}).
			SetReplacement(bson.D{{Key: "v", Value: v}}).SetUpsert(true))
	}
	if _, err := s.BulkWrite(ctx, "ordered", models); err != nil {
		failOnHang(ctx, t, "bulk", err)
	}
	var got struct{ V int }
	if err := s.Collection("ordered").FindOne(ctx, bson.D{{Key: "_id", Value: "x"}}).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.V != 5 {
		t.Errorf("v = %d; want 5 (last chunk wins)", got.V)
	}
}

func TestBulkWriteErrorReportsChunks(t *testing.T) {
	s, rec := newStore(t, WithChunk(10))
	ctx := rec.guard(t)
	coll := "dups"
	if _, err := s.Collection(coll).InsertOne(ctx, bson.D{{Key: "_id", Value: 15}}); err != nil {
		t.Fatal(err)
	}
	// 40 inserts; _id 15 (in chunk 2) is a duplicate.
	var models []mongo.WriteModel
	for i := range 40 {
		models = append(models, mongo.NewInsertOneModel().SetDocument(bson.D{{Key: "_id", Value: i}}))
	}
	rec.reset()
	res, err := s.BulkWrite(ctx, coll, models)
	if err == nil {
		t.Fatal("want duplicate-key error")
	}
	t.Logf("error: %v", err)
	var be *BulkError
	if !errors.As(err, &be) {
		t.Fatalf("error %T is not *BulkError", err)
	}
	if be.Succeeded != 1 || be.Chunks != 4 {
		t.Errorf("BulkError succeeded=%d chunks=%d; want 1, 4", be.Succeeded, be.Chunks)
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) {
		t.Errorf("error does not wrap mongo.BulkWriteException: %v", err)
	} else if !mongo.IsDuplicateKeyError(err) {
		t.Errorf("error is not a duplicate key error: %v", err)
	}
	// Chunk 1 fully, chunk 2 unordered so its other 9 inserts applied; chunks 3-4 not sent.
	if res.Inserted != 19 {
		t.Errorf("inserted %d; want 19", res.Inserted)
	}
	if got := rec.commands["insert"]; got != 2 {
		t.Errorf("%d insert commands sent; want 2 (nothing after the failed chunk, no retries)", got)
	}
	cnt, err := s.Collection(coll).CountDocuments(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if cnt != 20 {
		t.Errorf("count %d; want 20", cnt)
	}
}

func TestBulkWriteCanceledContext(t *testing.T) {
	s, rec := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.BulkWrite(ctx, "c", upsertModels(10, 1))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
	var be *BulkError
	if !errors.As(err, &be) || be.Succeeded != 0 {
		t.Errorf("want *BulkError with 0 succeeded, got %v", err)
	}
	if rec.stmts != 0 {
		t.Errorf("%d statements sent after cancel", rec.stmts)
	}
}

func TestEmptyAndOptions(t *testing.T) {
	s, rec := newStore(t)
	if res, err := s.BulkWrite(rec.guard(t), "c", nil); err != nil || res != (Result{}) {
		t.Errorf("empty: %+v, %v", res, err)
	}
	if len(rec.commands) != 0 {
		t.Errorf("empty bulk sent commands %v", rec.commands)
	}
	if s.Chunk() != DefaultChunk {
		t.Errorf("default chunk %d", s.Chunk())
	}
	for _, tc := range []struct{ in, want int }{{-5, 1}, {0, 1}, {1, 1}, {200, 200}, {1000, 1000}, {5000, 1000}} {
		if got := New(s.Database(), WithChunk(tc.in)).Chunk(); got != tc.want {
			t.Errorf("WithChunk(%d) -> %d; want %d", tc.in, got, tc.want)
		}
	}
	if s.Collection("x").Name() != "x" {
		t.Error("Collection name")
	}
}

// BenchmarkBulkUpsert measures idempotent bulk upserts (ReplaceOne with
// upsert, filter by _id) of n documents into one collection, on FerretDB's
// PostgreSQL backend (as shop dev runs it) and on the package's shared
// server (SQLite unless SHOP_DOCSTORE_BACKEND=postgresql). The first
// iteration inserts, later ones replace existing documents.
func BenchmarkBulkUpsert(b *testing.B) {
	pg := ferrettest.Start(b, ferrettest.PostgreSQL)
	for _, backend := range []struct{ name, uri string }{{"postgresql", pg.URI()}, {"shared", serverURI}} {
		for _, n := range []int{500, 5000} {
			b.Run(fmt.Sprintf("backend=%s/docs=%d", backend.name, n), func(b *testing.B) {
				s, rec := newStoreAt(b, backend.uri)
				models := upsertModels(n, 1)
				ctx := rec.guard(b)
				for b.Loop() {
					if _, err := s.BulkWrite(ctx, "bench", models); err != nil {
						failOnHang(ctx, b, "bulk upsert", err)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "upserts/s")
				rec.check(b, DefaultChunk)
			})
		}
	}
}

// TestConcurrentWritersShareGate runs several writers, each with its own
// Store on the same client and database, re-upserting documents that already
// exist (the case that pins SQLite connections in FerretDB). Without the
// shared gate, four such writers deadlock FerretDB v1.24.
func TestConcurrentWritersShareGate(t *testing.T) {
	const writers, n = 8, 300
	base, rec := newStore(t)
	ctx := rec.guard(t)
	models := upsertModels(n, 1)
	for w := range writers {
		if _, err := base.BulkWrite(ctx, fmt.Sprintf("c%d", w), models); err != nil {
			failOnHang(ctx, t, "seed", err)
		}
	}

	t0 := time.Now()
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		s := New(base.Database()) // default gate: shared per client+database
		if s.Gate() != base.Gate() {
			t.Fatal("Stores on the same client and database do not share the default gate")
		}
		wg.Go(func() {
			for range 3 {
				if _, err := s.BulkWrite(ctx, fmt.Sprintf("c%d", w), models); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		failOnHang(ctx, t, "concurrent writers", err)
	}
	t.Logf("%d writers x 3 x %d re-upserts in %v", writers, n, time.Since(t0))
	rec.check(t, DefaultChunk)
}

func TestGate(t *testing.T) {
	g := NewGate(10)
	if g.Budget() != 10 || NewGate(0).Budget() != 1 || NewGate(1e6).Budget() != MaxChunk {
		t.Fatal("budget clamping")
	}
	ctx := context.Background()
	n, err := g.acquire(ctx, 7)
	if err != nil || n != 7 {
		t.Fatalf("acquire 7: %d, %v", n, err)
	}
	// Only 3 left: a request for 5 must wait and honour ctx.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := g.acquire(short, 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire beyond budget: %v; want deadline exceeded", err)
	}
	// The failed attempt returned its partial tokens: 3 are still free.
	if m, err := g.acquire(ctx, 3); err != nil || m != 3 {
		t.Fatalf("acquire 3: %d, %v", m, err)
	}
	g.release(10)
	// Requests larger than the budget are capped, not stuck forever.
	if m, err := g.acquire(ctx, 50); err != nil || m != 10 {
		t.Fatalf("acquire 50: %d, %v", m, err)
	}
	g.release(10)

	s := New(nil, WithGate(nil))
	if s.Gate() != nil {
		t.Error("WithGate(nil) should disable gating")
	}
}

// Replaces filtered on a revision, sent at once by writers sharing a gate,
// behave as a compare-and-set: for each revision exactly one matches. On
// FerretDB without the gate's per-collection lock, several can match (its
// update is a query followed by a write).
func TestRevisionFilteredReplacesAreCompareAndSet(t *testing.T) {
	const writers, rounds = 8, 15
	base, rec := newStore(t)
	ctx := rec.guard(t)
	if err := base.Collection("cas").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := base.BulkWrite(ctx, "cas", []mongo.WriteModel{
		mongo.NewInsertOneModel().SetDocument(bson.D{{Key: "_id", Value: "x"}, {Key: "rev", Value: 0}}),
	}); err != nil {
		t.Fatal(err)
	}
	for rev := range rounds {
		var matched atomic.Int64
		var wg sync.WaitGroup
		for w := range writers {
			s := New(base.Database())
			wg.Go(func() {
				res, err := s.BulkWrite(ctx, "cas", []mongo.WriteModel{mongo.NewReplaceOneModel().
					SetFilter(bson.D{{Key: "_id", Value: "x"}, {Key: "rev", Value: rev}}).
					SetReplacement(bson.D{{Key: "_id", Value: "x"}, {Key: "rev", Value: rev + 1}, {Key: "by", Value: w}})})
				if err != nil {
					t.Error(err)
				}
				matched.Add(res.Matched)
			})
		}
		wg.Wait()
		if got := matched.Load(); got != 1 {
			t.Fatalf("revision %d: %d of %d concurrent replaces matched, want exactly 1", rev, got, writers)
		}
	}
}

// FindByIDs finds exactly the documents among ids that exist and match
// the extra filter, whatever their number (more than a chunk here).
func TestFindByIDs(t *testing.T) {
	s, rec := newStore(t)
	ctx := rec.guard(t)
	if err := s.Collection("byid").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	var models []mongo.WriteModel
	for i := range 120 {
		models = append(models, mongo.NewInsertOneModel().SetDocument(bson.D{{Key: "_id", Value: fmt.Sprintf("d%03d", i)}, {Key: "even", Value: i%2 == 0}}))
	}
	if _, err := s.BulkWrite(ctx, "byid", models); err != nil {
		t.Fatal(err)
	}
	if ferret, err := IsFerretDB(ctx, s.Database()); err != nil || !ferret {
		t.Fatalf("IsFerretDB: %v, %v", ferret, err)
	}
	var ids []string
	for i := 60; i < 130; i++ { // 60 present, 10 absent
		ids = append(ids, fmt.Sprintf("d%03d", i))
	}
	type doc struct {
		ID   string `bson:"_id"`
		Even bool   `bson:"even"`
	}
	all, err := FindByIDs[doc](ctx, s.Database(), "byid", ids, nil)
	if err != nil || len(all) != 60 {
		t.Fatalf("all: %d documents, %v; want 60", len(all), err)
	}
	even, err := FindByIDs[doc](ctx, s.Database(), "byid", ids, bson.D{{Key: "even", Value: true}})
	if err != nil || len(even) != 30 {
		t.Fatalf("even: %d documents, %v; want 30", len(even), err)
	}
	for _, d := range even {
		if !d.Even {
			t.Errorf("%s is odd", d.ID)
		}
	}
	if none, err := FindByIDs[doc](ctx, s.Database(), "byid", nil, nil); err != nil || len(none) != 0 {
		t.Fatalf("no ids: %v, %v", none, err)
	}
}

// BulkWriteDocs writes stripes side by side yet keeps revision-filtered
// replaces a compare-and-set: writers racing on the same documents, with
// BulkWriteDocs and BulkWrite, match each document's revision exactly once.
func TestBulkWriteDocsIsCompareAndSet(t *testing.T) {
	const writers, rounds, docs = 6, 6, 40
	base, rec := newStore(t, WithChunk(5))
	ctx := rec.guard(t)
	if err := base.Collection("casdocs").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	var ids []string
	var seed []mongo.WriteModel
	for i := range docs {
		ids = append(ids, fmt.Sprintf("doc-%02d", i))
		seed = append(seed, mongo.NewInsertOneModel().SetDocument(bson.D{{Key: "_id", Value: ids[i]}, {Key: "rev", Value: 0}}))
	}
	if _, err := base.BulkWriteDocs(ctx, "casdocs", ids, seed); err != nil {
		t.Fatal(err)
	}
	stripes := map[int]bool{}
	for _, id := range ids {
		stripes[StripeOf(id)] = true
	}
	if len(stripes) < 2 {
		t.Fatalf("the documents fall in %d stripe(s)", len(stripes))
	}
	for rev := range rounds {
		var matched atomic.Int64
		var wg sync.WaitGroup
		for w := range writers {
			s := New(base.Database(), WithChunk(5))
			wg.Go(func() {
				models := make([]mongo.WriteModel, docs)
				for i, id := range ids {
					models[i] = mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: id}, {Key: "rev", Value: rev}}).
						SetReplacement(bson.D{{Key: "_id", Value: id}, {Key: "rev", Value: rev + 1}, {Key: "by", Value: w}})
				}
				var res Result
				var err error
				if w == 0 {
					res, err = s.BulkWrite(ctx, "casdocs", models)
				} else {
					res, err = s.BulkWriteDocs(ctx, "casdocs", ids, models)
				}
				if err != nil {
					t.Error(err)
				}
				matched.Add(res.Matched)
			})
		}
		wg.Wait()
		if got := matched.Load(); got != docs {
			t.Fatalf("revision %d: %d replaces matched, want exactly one per document (%d)", rev, got, docs)
		}
	}
	if _, err := base.BulkWriteDocs(ctx, "casdocs", ids[:1], seed); err == nil {
		t.Error("BulkWriteDocs with fewer ids than models: want an error")
	}
}
