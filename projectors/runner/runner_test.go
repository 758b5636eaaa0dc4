package runner_test

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/internal/docstore"
	"shopstream/internal/embedded/ferret"
	"shopstream/internal/embedded/registry"
	"shopstream/internal/eventlog"
	"shopstream/internal/testbackend"
	"shopstream/projectors/products"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

type fixture struct {
	serde *eventlog.Serde
	db    *mongo.Database
	r     *runner.Runner[products.View]
}

func setup(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	reg, err := registry.Start(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Stop(ctx) })
	rc, _ := sr.NewClient(sr.URLs(reg.URL()))
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
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
	mc, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Disconnect(ctx) })
	f := &fixture{serde: eventlog.NewSerde(rc, cat), db: mc.Database(dbName)}
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
