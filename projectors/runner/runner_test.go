package runner_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/internal/devinfra/embedded/ferret"
	"shopstream/internal/platform/docstore"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/testinfra/eventlogtest"
	"shopstream/internal/testinfra/testbackend"
	"shopstream/projectors/products"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

type fixture struct {
	serde *eventlog.Serde
	db    *mongo.Database
	r     *runner.Runner[products.View]
}

func setup(t *testing.T) *fixture { return setupWatched(t, nil) }

// setupWatched is setup with the MongoDB client's commands seen by watch
// (nil: none).
func setupWatched(t *testing.T, watch *event.CommandMonitor) *fixture {
	t.Helper()
	ctx := context.Background()
	serde, _ := eventlogtest.Serde(t)
	// MongoDB: embedded FerretDB, or a database of its own on the shared
	// container with SHOP_TEST_BACKEND=testcontainers.
	uri, dbName := "", "shop"
	if testbackend.Containers(t) {
		uri, dbName = testbackend.Mongo(t), testbackend.DatabaseName(t)
	} else {
		fdb, err := ferret.Start(ctx, ferret.Config{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = fdb.Stop(ctx) })
		uri = fdb.URI()
	}
	mc, err := mongo.Connect(options.Client().ApplyURI(uri).SetMonitor(watch))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Disconnect(ctx) })
	f := &fixture{serde: serde, db: mc.Database(dbName)}
	f.r = runner.New(products.Projection(), f.serde, docstore.New(f.db), slog.New(slog.NewTextHandler(io.Discard, nil)))
	return f
}

func (f *fixture) record(t *testing.T, offset int64, aggID string, version int64, ev schemas.Event) *kgo.Record {
	t.Helper()
	ty, _ := f.serde.Catalog().TypeOf(ev)
	value, err := f.serde.Encode(context.Background(), ty.Topic, ev)
	if err != nil {
		t.Fatal(err)
	}
	m := eventlog.Metadata{EventID: "e", Type: ty.Name, AggregateID: aggID, AggregateVersion: version, OccurredAt: time.Date(2026, 11, 27, 9, 0, int(offset), 0, time.UTC)}
	return &kgo.Record{Topic: ty.Topic, Offset: offset, Key: []byte(aggID), Value: value, Headers: m.Headers()}
}

func (f *fixture) docs(t *testing.T) []bson.M {
	t.Helper()
	cur, err := f.db.Collection(products.Projection().Collection()).Find(context.Background(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var out []bson.M
	if err := cur.All(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// A batch applied, then redelivered whole and in part, leaves the documents
// exactly as after the first pass (revision included: nothing is rewritten);
// a poison record is skipped and the rest of its batch applies.
func TestRedeliveredBatchesChangeNothing(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	var batch []*kgo.Record
	for i, id := range []string{"p1", "p2", "p3"} {
		batch = append(batch, f.record(t, int64(10*i), id, 1, schemas.ProductRegistered{ProductID: id, Title: "T" + id, PriceCents: 100, Currency: "EUR", InitialStock: 2}))
		for v := int64(1); v <= 3; v++ {
			batch = append(batch, f.record(t, int64(10*i)+v, id, v, schemas.ReviewAdded{ReviewID: "r", ProductID: id, CustomerID: "c", Rating: int32(v + 1)}))
		}
	}
	if err := f.r.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	first := f.docs(t)
	if len(first) != 3 {
		t.Fatalf("%d documents, want 3", len(first))
	}
	if err := f.r.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Apply(ctx, batch[2:7]); err != nil {
		t.Fatal(err)
	}
	if again := f.docs(t); !reflect.DeepEqual(again, first) {
		t.Fatalf("redelivery changed documents:\n got %v\nwant %v", again, first)
	}

	poison := &kgo.Record{Topic: schemas.TopicReviews, Key: []byte("p1"), Value: []byte("not avro"), Headers: batch[1].Headers}
	next := f.record(t, 99, "p1", 4, schemas.ReviewAdded{ReviewID: "r4", ProductID: "p1", CustomerID: "c", Rating: 1})
	if err := f.r.Apply(ctx, []*kgo.Record{poison, next}); err != nil {
		t.Fatal(err)
	}
	var doc runner.Document[products.View]
	if err := f.db.Collection(products.Projection().Collection()).FindOne(ctx, bson.D{{Key: "_id", Value: "p1"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.View.RatingCount != 4 || doc.Rev != 2 {
		t.Fatalf("after the poison batch: count %d rev %d", doc.View.RatingCount, doc.Rev)
	}
}

// load reads the document id of coll.
// setupCountingFinds is setup, with the finds on the products collection
// counted.
func setupCountingFinds(t *testing.T) (*fixture, *atomic.Int64) {
	var finds atomic.Int64
	f := setupWatched(t, &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if coll, _ := e.Command.Lookup("find").StringValueOK(); coll == products.Projection().Collection() {
			finds.Add(1)
		}
	}})
	return f, &finds
}

// fresh is another runner of the fixture's projection on the same
// database, with nothing in memory.
func (f *fixture) fresh() *runner.Runner[products.View] {
	return runner.New(products.Projection(), f.serde, docstore.New(f.db), slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func (f *fixture) load(t *testing.T, coll, id string) (runner.Document[products.View], bool) {
	t.Helper()
	var doc runner.Document[products.View]
	err := f.db.Collection(coll).FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return doc, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return doc, true
}

// A runner made by Into holds what it folds and writes it at Flush: each
// document once, as an insert, however many batches touched it, with the
// same view as a live runner's; a document written by an earlier Flush is
// loaded and replaced at the next one.
func TestIntoWritesEachDocumentOnceAtFlush(t *testing.T) {
	f := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a flush that cannot finish retries until then
	defer cancel()
	const coll = "products_rebuilt"
	if err := f.db.CreateCollection(ctx, coll); err != nil {
		t.Fatal(err)
	}
	into := f.r.Into(coll)
	reg := func(off int64, id string) *kgo.Record {
		return f.record(t, off, id, 1, schemas.ProductRegistered{ProductID: id, Title: "T" + id, PriceCents: 100, Currency: "EUR", InitialStock: 2})
	}
	review := func(off int64, id string, v int64) *kgo.Record {
		return f.record(t, off, id, v, schemas.ReviewAdded{ReviewID: fmt.Sprint("r", off), ProductID: id, CustomerID: "c", Rating: int32(1 + v%5)})
	}
	batches := [][]*kgo.Record{
		{reg(0, "p1"), reg(1, "p2")},
		{review(2, "p1", 1), review(3, "p2", 1), reg(4, "p3")},
		{review(5, "p1", 2)},
	}
	for _, b := range batches {
		if err := into.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := f.r.Apply(ctx, b); err != nil { // the live runner, for comparison
			t.Fatal(err)
		}
	}
	if n, _ := f.db.Collection(coll).CountDocuments(ctx, bson.D{}); n != 0 {
		t.Fatalf("%d documents written before Flush, want 0", n)
	}
	if err := into.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	live := products.Projection().Collection()
	for _, id := range []string{"p1", "p2", "p3"} {
		got, ok := f.load(t, coll, id)
		want, _ := f.load(t, live, id)
		if !ok || got.Rev != 1 || !reflect.DeepEqual(got.View, want.View) {
			t.Errorf("%s: found %v at _rev %d, view %+v; want _rev 1 and the live view %+v", id, ok, got.Rev, got.View, want.View)
		}
	}
	// A later batch loads p1 (it was written) and replaces it.
	if err := into.Apply(ctx, []*kgo.Record{review(6, "p1", 3)}); err != nil {
		t.Fatal(err)
	}
	if err := into.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.load(t, coll, "p1"); got.Rev != 2 || got.View.RatingCount != 3 {
		t.Errorf("p1 after the second flush: _rev %d, %d ratings; want _rev 2, 3 ratings", got.Rev, got.View.RatingCount)
	}
}

// When a Flush's write fails with some documents written (here p4 is
// already there at the revision the flush writes, so its insert fails on
// the duplicate _id), the flush reads the documents back, counts those at
// their held revision as written, and ends instead of folding anything
// twice.
func TestIntoFlushAfterAPartialWriteKeepsWhatLanded(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	const coll = "products_rebuilt"
	if err := f.db.CreateCollection(ctx, coll); err != nil {
		t.Fatal(err)
	}
	into := f.r.Into(coll)
	var batch []*kgo.Record
	for i, id := range []string{"p4", "p5"} {
		batch = append(batch, f.record(t, int64(i), id, 1, schemas.ProductRegistered{ProductID: id, Title: "T" + id, PriceCents: 100, Currency: "EUR", InitialStock: 2}))
	}
	if err := into.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Collection(coll).InsertOne(ctx, bson.D{{Key: "_id", Value: "p4"}, {Key: "_rev", Value: int64(1)}, {Key: "title", Value: "landed"}}); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := into.Flush(fctx); err != nil {
		t.Fatalf("flush after a partial write: %v", err)
	}
	p4, _ := f.load(t, coll, "p4")
	p5, ok := f.load(t, coll, "p5")
	if p4.View.Title != "landed" || !ok || p5.Rev != 1 || p5.View.Title != "Tp5" {
		t.Errorf("p4 %+v, p5 (found %v) %+v: want p4 left as it landed and p5 written at _rev 1", p4, ok, p5)
	}
}

// A batch large enough to be decoded on several goroutines folds in log
// order, and its poison record is skipped and counted once.
func TestLargeBatchDecodesInOrderAndSkipsPoison(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	batch := []*kgo.Record{f.record(t, 0, "p1", 1, schemas.ProductRegistered{ProductID: "p1", Title: "T", PriceCents: 100, Currency: "EUR", InitialStock: 2})}
	var sum int64
	for v := int64(1); v <= 700; v++ {
		batch = append(batch, f.record(t, v, "p1", v, schemas.ReviewAdded{ReviewID: fmt.Sprint("r", v), ProductID: "p1", CustomerID: fmt.Sprint("c", v), Rating: int32(1 + v%5)}))
		sum += 1 + v%5
		if v == 350 {
			batch = append(batch, &kgo.Record{Topic: schemas.TopicReviews, Key: []byte("p1"), Value: []byte("not avro"), Headers: batch[1].Headers})
		}
	}
	before := f.r.Poisoned()
	if err := f.r.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	doc, _ := f.load(t, products.Projection().Collection(), "p1")
	if doc.View.RatingCount != 700 || doc.View.RatingSum != sum || f.r.Poisoned()-before != 1 {
		t.Errorf("%d ratings summing %d, %d poison; want 700 summing %d, 1 poison", doc.View.RatingCount, doc.View.RatingSum, f.r.Poisoned()-before, sum)
	}
	if n := len(doc.View.Reviews); n == 0 || doc.View.Reviews[0].CustomerID != "c700" && doc.View.Reviews[n-1].CustomerID != "c700" {
		t.Errorf("latest reviews %+v: want c700's at one end (the fold saw the log's order)", doc.View.Reviews)
	}
}

// A batch of registrations (Projection.Creates) inserts its products
// without looking them up; a registration whose document exists already
// (the inventory's stock folded first, or the registration redelivered)
// fails its insert on the _id and the batch is folded again with every
// document looked up, so the document ends as a batch looked up from the
// start would leave it.
func TestCreatingEventsSkipTheLookUpAndFallBackWhenTheDocumentExists(t *testing.T) {
	f, finds := setupCountingFinds(t)
	ctx := context.Background()
	register := func(offset int64, id string) *kgo.Record {
		return f.record(t, offset, id, 1, schemas.ProductRegistered{ProductID: id, Title: "T" + id, PriceCents: 100, Currency: "EUR", InitialStock: 2})
	}
	var batch []*kgo.Record
	for i, id := range []string{"p1", "p2", "p3"} {
		batch = append(batch, register(int64(i), id))
	}
	if err := f.r.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if n := finds.Load(); n != 0 {
		t.Fatalf("a batch of registrations looked up %d documents; want none", n)
	}
	// p4's stock arrives before its registration, which then comes with
	// p1's again, to a runner that remembers neither (another instance, or
	// this one restarted).
	stock := f.record(t, 10, "p4", 1, schemas.StockReceived{ProductID: "p4", Quantity: 7, Available: 7, CatalogVersion: 1})
	if err := f.r.Apply(ctx, []*kgo.Record{stock}); err != nil {
		t.Fatal(err)
	}
	before := f.docs(t)
	if err := f.fresh().Apply(ctx, []*kgo.Record{register(3, "p4"), register(0, "p1")}); err != nil {
		t.Fatal(err)
	}
	p4, ok := f.load(t, products.Projection().Collection(), "p4")
	if !ok || !p4.View.Registered || p4.View.Stock != 7 || p4.View.Title != "Tp4" || p4.Rev != 2 {
		t.Fatalf("p4 after its registration: %+v (found %v); want registered, stock 7 from the inventory, title Tp4, revision 2", p4, ok)
	}
	if p1, _ := f.load(t, products.Projection().Collection(), "p1"); p1.Rev != 1 {
		t.Fatalf("p1 rewritten by its redelivered registration: revision %d", p1.Rev)
	}
	if len(before) != 4 {
		t.Fatalf("%d documents before p4's registration, want 4", len(before))
	}
}

// A live runner does not look up the documents it wrote last: it folds
// onto them as it remembers them. When one has moved on since (another
// runner wrote it, as during a rebalance), the write's revision filter
// fails, and the batch is folded again from documents looked up: nothing
// is lost and nothing is folded twice.
func TestRemembersWhatItWroteAndRefoldsWhenItMovedOn(t *testing.T) {
	f, finds := setupCountingFinds(t)
	ctx := context.Background()
	review := func(offset int64, id string, v int64) *kgo.Record {
		return f.record(t, offset, id, v, schemas.ReviewAdded{ReviewID: fmt.Sprintf("%s-r%d", id, v), ProductID: id, CustomerID: "c", Rating: int32(v)})
	}
	var registrations []*kgo.Record
	for i, id := range []string{"p1", "p2"} {
		registrations = append(registrations, f.record(t, int64(i), id, 1, schemas.ProductRegistered{ProductID: id, Title: "T" + id, PriceCents: 100, Currency: "EUR", InitialStock: 2}))
	}
	if err := f.r.Apply(ctx, registrations); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Apply(ctx, []*kgo.Record{review(10, "p1", 1), review(11, "p2", 1)}); err != nil {
		t.Fatal(err)
	}
	if n := finds.Load(); n != 0 {
		t.Fatalf("reviews of the products it had just written: %d look-ups, want none", n)
	}

	// Another runner adds p1's second review; this one still remembers p1
	// at revision 2.
	if err := f.fresh().Apply(ctx, []*kgo.Record{review(12, "p1", 2)}); err != nil {
		t.Fatal(err)
	}
	finds.Store(0)
	if err := f.r.Apply(ctx, []*kgo.Record{review(13, "p1", 3), review(14, "p2", 2)}); err != nil {
		t.Fatal(err)
	}
	if finds.Load() == 0 {
		t.Error("the runner wrote over a document that had moved on without looking it up")
	}
	for _, want := range []struct {
		id         string
		count, sum int64
		rev        int64
	}{{"p1", 3, 6, 4}, {"p2", 2, 3, 3}} {
		doc, _ := f.load(t, products.Projection().Collection(), want.id)
		if doc.View.RatingCount != want.count || doc.View.RatingSum != want.sum || doc.Rev != want.rev {
			t.Errorf("%s: %d ratings summing %d at revision %d; want %d summing %d at revision %d",
				want.id, doc.View.RatingCount, doc.View.RatingSum, doc.Rev, want.count, want.sum, want.rev)
		}
	}

	// What it refolded it remembers again.
	finds.Store(0)
	if err := f.r.Apply(ctx, []*kgo.Record{review(15, "p1", 4)}); err != nil {
		t.Fatal(err)
	}
	if n := finds.Load(); n != 0 {
		t.Errorf("after the refold: %d look-ups, want none", n)
	}
}
