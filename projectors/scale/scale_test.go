package scale_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"shopstream/internal/devinfra/embedded/ferret/ferrettest"
	"shopstream/internal/platform/docstore"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/testinfra/eventlogtest"
	"shopstream/internal/testinfra/latency"
	"shopstream/internal/testinfra/testenv"
	"shopstream/projectors/listing"
	"shopstream/projectors/orderviews"
	"shopstream/projectors/products"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// TestReadSideScale measures, per catalogue size, in one run on one store:
//
//   - GET /products/{id}'s look-up (products.Reader.Get of a random
//     product), p50 and p99;
//   - GET /customers/{id}/orders's look-up (orderviews.Reader.OfCustomer of a
//     random customer, 10 orders each, limit 20), p50 and p99;
//   - the projector (runner.Apply on batches of 2000 records, as Run polls
//     them) registering the catalogue (new documents: look-ups that miss,
//     inserts), events/s, and adding reviews to existing products (look-ups,
//     revision-guarded replaces), events/s;
//   - GET /products' pages (products.Reader.Page, 20 products): the first,
//     and the one after a random product, p50 and p99, and the listing
//     projector registering the catalogue, events/s;
//   - docstore.Store.BulkWrite of upserts of existing documents
//     (ReplaceOne by _id with upsert, as BenchmarkBulkUpsert), docs/s;
//
// each with its ratio to the first size's row. The store is the embedded
// FerretDB on the PostgreSQL backend (on an embedded PostgreSQL), or on
// SQLite with SHOP_SCALE_BACKEND=sqlite. Run it with
//
//	SHOP_SCALE_SIZES=1000,10000,100000 go test -run TestReadSideScale -v -timeout 30m ./projectors/scale
func TestReadSideScale(t *testing.T) {
	sizes := testenv.Sizes(t, "SHOP_SCALE_SIZES", "1000,10000,100000")
	ctx := context.Background()
	backend := cmpOr(os.Getenv("SHOP_SCALE_BACKEND"), ferrettest.PostgreSQL)
	srv := ferrettest.Start(t, backend)
	mc := ferrettest.Connect(t, srv)

	serde, _ := eventlogtest.Serde(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	var rows []row
	for _, n := range sizes {
		db := mc.Database(fmt.Sprintf("scale_%d", n))
		store := docstore.New(db)
		r := row{n: n}

		// The projector registers the catalogue.
		pr := runner.New(products.Projection(), serde, store, log)
		recs := encode(ctx, t, serde, n, func(i int) (string, int64, schemas.Event) {
			id := productID(i)
			return id, 1, schemas.ProductRegistered{ProductID: id, Title: fmt.Sprintf("Maillot domicile Olympique de Marseille 1993, taille L, n°%d", i),
				PriceCents: int64(8999 + i), Currency: "EUR", InitialStock: 50}
		})
		r.register = project(ctx, t, pr, recs)
		// The listing folds the same registrations (GET /products' order).
		r.listing = project(ctx, t, runner.New(listing.Projection(), serde, store, log), recs)
		project(ctx, t, runner.New(listing.Heads(), serde, store, log), recs)
		_ = srv.SyncIndexes(ctx)

		// Reviews on existing products: revision-guarded replaces.
		reviews := min(n, 6000)
		rng := rand.New(rand.NewPCG(uint64(n), 2))
		recs = encode(ctx, t, serde, reviews, func(i int) (string, int64, schemas.Event) {
			id := productID(rng.IntN(n))
			return id, int64(i + 1), schemas.ReviewAdded{ReviewID: fmt.Sprintf("r%d", i), ProductID: id, CustomerID: customerID(i % 97), Rating: int32(1 + i%5),
				Comment: "Très bon maillot, taille un peu grand, livraison rapide."}
		})
		r.review = project(ctx, t, pr, recs)

		// The orders read model, 10 orders per customer, written directly.
		or := runner.New(orderviews.Projection(), serde, store, log)
		coll, err := or.Target(ctx) // creates the projection's indexes
		if err != nil {
			t.Fatal(err)
		}
		fillOrders(ctx, t, db.Collection(coll), n)
		if err := srv.SyncIndexes(ctx); err != nil {
			t.Fatal(err)
		}

		pread := products.NewReader(db)
		lat := latency.Sample(4*time.Second, 20, 1000, func() {
			if _, found, err := pread.Get(ctx, productID(rng.IntN(n))); err != nil || !found {
				t.Fatalf("product: found %v, %v", found, err)
			}
		})
		r.getP50, r.getP99 = lat.At(50), lat.At(99)
		// GET /products: the first page of the catalogue, and the page
		// after a random product (its cursor) of the first half.
		lat = latency.Sample(4*time.Second, 20, 200, func() {
			if ps, more, err := pread.Page(ctx, "", 20); err != nil || len(ps) != 20 || !more {
				t.Fatalf("first page: %d products, more %v, %v", len(ps), more, err)
			}
		})
		r.pageP50, r.pageP99, r.pages = lat.At(50), lat.At(99), len(lat)
		lat = latency.Sample(4*time.Second, 20, 200, func() {
			if ps, more, err := pread.Page(ctx, productID(rng.IntN(n/2)), 20); err != nil || len(ps) != 20 || !more {
				t.Fatalf("a page after a product: %d products, more %v, %v", len(ps), more, err)
			}
		})
		r.deepP50, r.deepP99 = lat.At(50), lat.At(99)
		oread := orderviews.NewReader(db)
		lat = latency.Sample(4*time.Second, 20, 500, func() {
			if os, err := oread.OfCustomer(ctx, customerID(rng.IntN(n/10)), 20); err != nil || len(os) != 10 {
				t.Fatalf("orders of a customer: %d, %v", len(os), err)
			}
		})
		r.ordP50, r.ordP99 = lat.At(50), lat.At(99)

		// Bulk upserts of existing documents.
		upserted, start := 0, time.Now()
		for time.Since(start) < 4*time.Second && upserted < n {
			var models []mongo.WriteModel
			for i := upserted; i < min(upserted+500, n); i++ {
				models = append(models, mongo.NewReplaceOneModel().SetUpsert(true).
					SetFilter(bson.D{{Key: "_id", Value: fmt.Sprintf("u%d", i%max(1, n/2))}}).
					SetReplacement(bson.D{{Key: "_id", Value: fmt.Sprintf("u%d", i%max(1, n/2))}, {Key: "v", Value: i}, {Key: "pad", Value: strings.Repeat("x", 300)}}))
			}
			if _, err := store.BulkWrite(ctx, "upserts", models); err != nil {
				t.Fatal(err)
			}
			upserted += len(models)
		}
		r.upserts = float64(upserted) / time.Since(start).Seconds()
		rows = append(rows, r)
		t.Logf("%d documents: done", n)
		_ = db.Drop(ctx)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nbackend %s; ratios to the %d row\n", backend, rows[0].n)
	fmt.Fprintf(&b, "%7s | %-28s | %-28s | %-20s | %-20s | %-18s\n", "docs", "GET /products/{id} p50/p99", "GET /customers/{id}/orders", "projector register", "projector reviews", "BulkUpsert")
	b0 := rows[0]
	for _, r := range rows {
		fmt.Fprintf(&b, "%7d | %6.2f/%6.2f ms (%5.2f×/%5.2f×) | %6.2f/%6.2f ms (%5.2f×/%5.2f×) | %6.0f ev/s (%5.2f×) | %6.0f ev/s (%5.2f×) | %6.0f/s (%5.2f×)\n", r.n,
			ms(r.getP50), ms(r.getP99), ms(r.getP50)/ms(b0.getP50), ms(r.getP99)/ms(b0.getP99),
			ms(r.ordP50), ms(r.ordP99), ms(r.ordP50)/ms(b0.ordP50), ms(r.ordP99)/ms(b0.ordP99),
			r.register, r.register/b0.register, r.review, r.review/b0.review, r.upserts, r.upserts/b0.upserts)
	}
	fmt.Fprintf(&b, "%7s | %-36s | %-36s | %s\n", "docs", "GET /products first page of 20", "GET /products after a random product", "listing projector register")
	for _, r := range rows {
		fmt.Fprintf(&b, "%7d | %7.2f/%7.2f ms (%5.2f×/%5.2f×) | %7.2f/%7.2f ms (%5.2f×/%5.2f×) | %6.0f ev/s (%5.2f×)\n", r.n,
			ms(r.pageP50), ms(r.pageP99), ms(r.pageP50)/ms(b0.pageP50), ms(r.pageP99)/ms(b0.pageP99),
			ms(r.deepP50), ms(r.deepP99), ms(r.deepP50)/ms(b0.deepP50), ms(r.deepP99)/ms(b0.deepP99),
			r.listing, r.listing/b0.listing)
	}
	fmt.Print(b.String())
}

type row struct {
	n                              int
	getP50, getP99, ordP50, ordP99 time.Duration
	pageP50, pageP99               time.Duration
	deepP50, deepP99               time.Duration
	pages                          int
	register, review, upserts      float64
	listing                        float64
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func productID(i int) string  { return fmt.Sprintf("0193f5a0-0000-7000-8000-%012x", i) }
func customerID(i int) string { return fmt.Sprintf("0193f5a0-0000-7000-c000-%012x", i) }
func orderID(i int) string    { return fmt.Sprintf("0193f5a0-0000-7000-d000-%012x", i) }

// encode is n records, the ith of event(i) with its aggregate id and
// version.
func encode(ctx context.Context, t *testing.T, serde *eventlog.Serde, n int, event func(i int) (string, int64, schemas.Event)) []*kgo.Record {
	t.Helper()
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	recs := make([]*kgo.Record, n)
	for i := range n {
		id, version, ev := event(i)
		ty, _ := serde.Catalog().TypeOf(ev)
		value, err := serde.Encode(ctx, ty.Topic, ev)
		if err != nil {
			t.Fatal(err)
		}
		m := eventlog.Metadata{EventID: fmt.Sprintf("e%d", i), Type: ty.Name, AggregateID: id, AggregateVersion: version, OccurredAt: t0.Add(time.Duration(i) * time.Second)}
		// Over the topics' 6 partitions, offsets numbered per partition.
		recs[i] = &kgo.Record{Topic: ty.Topic, Partition: int32(i % 6), Offset: int64(i / 6), Key: []byte(id), Value: value, Headers: m.Headers()}
	}
	return recs
}

// project applies recs in batches of 2000 and returns events/s.
func project[V any](ctx context.Context, t *testing.T, r *runner.Runner[V], recs []*kgo.Record) float64 {
	t.Helper()
	start := time.Now()
	for lo := 0; lo < len(recs); lo += 2000 {
		if err := r.Apply(ctx, recs[lo:min(lo+2000, len(recs))]); err != nil {
			t.Fatal(err)
		}
	}
	return float64(len(recs)) / time.Since(start).Seconds()
}

// fillOrders writes n placed orders, ten per customer, as the orders
// projection would have folded them.
func fillOrders(ctx context.Context, t *testing.T, coll *mongo.Collection, n int) {
	t.Helper()
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	for lo := 0; lo < n; lo += 1000 {
		var docs []any
		for i := lo; i < min(lo+1000, n); i++ {
			id := orderID(i)
			env := eventlog.Envelope{Topic: schemas.TopicOrders, Meta: eventlog.Metadata{AggregateID: id, AggregateVersion: 1, OccurredAt: t0.Add(time.Duration(i) * time.Second)},
				Event: schemas.OrderPlaced{OrderID: id, CustomerID: customerID(i / 10), PaymentMethod: "card", TotalCents: 3000,
					Items: []schemas.OrderLine{{ProductID: productID(i), Quantity: 2, UnitPriceCents: 1500}}}}
			docs = append(docs, runner.Document[orderviews.View]{ID: id, Rev: 1, View: orderviews.Apply(orderviews.View{}, env)})
		}
		if _, err := coll.InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
