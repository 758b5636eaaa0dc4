package ferret

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/internal/devinfra/embedded/postgres"
	"shopstream/internal/platform/docstore"
	"shopstream/internal/testinfra/latency"
	"shopstream/internal/testinfra/testenv"
)

// TestBackendCosts measures, in one run, what the read side's queries
// cost on each backend as the collection grows: FerretDB on SQLite,
// FerretDB on PostgreSQL as FerretDB indexes it (btree twins only), and
// FerretDB on PostgreSQL with this package's push-down twins (the
// default). Per size and backend, on product-shaped documents (~400 B,
// ten per customer, an index on customer_id):
//
//   - FindOne({_id}) latency, p50 and p99;
//   - Find({customer_id}) (10 documents) latency, p50;
//   - replaces of existing documents in the runner's shape (filter
//     {_id, _rev}, unordered chunks of docstore.DefaultChunk through a
//     docstore.Store), documents/s.
//
// Each measurement runs for at most a few seconds (SQLite at 10k does a
// handful of look-ups a second). It needs the PostgreSQL server binaries
// (see internal/devinfra/embedded/postgres) and runs only when asked:
//
//	SHOP_FERRET_BACKENDS=1000,10000 go test -run TestBackendCosts -v ./internal/devinfra/embedded/ferret
//
// SHOP_FERRET_BACKENDS_ONLY=sqlite,pg,pg+twins picks the backends;
// SHOP_FERRET_PG_PARAMS adds parameters to FerretDB's PostgreSQL URL
// (e.g. synchronous_commit=off).
func TestBackendCosts(t *testing.T) {
	sizes := testenv.Sizes(t, "SHOP_FERRET_BACKENDS", "1000,10000[,100000]")
	backends := []string{"sqlite", "pg", "pg+twins"}
	if only := os.Getenv("SHOP_FERRET_BACKENDS_ONLY"); only != "" {
		backends = strings.Split(only, ",")
	}
	ctx := context.Background()
	var pgURL string
	if slices.ContainsFunc(backends, func(b string) bool { return strings.HasPrefix(b, "pg") }) {
		pg, err := postgres.Start(ctx, postgres.Config{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pg.Stop(context.Background()) })
		if pgURL, err = pg.Database(ctx, "ferretdb"); err != nil {
			t.Fatal(err)
		}
		if extra := os.Getenv("SHOP_FERRET_PG_PARAMS"); extra != "" { // e.g. synchronous_commit=off
			pgURL += "&" + extra
		}
	}

	type row struct {
		backend                string
		n                      int
		idP50, idP99, custP50  time.Duration
		idSamples, custSamples int
		replaces               float64
	}
	var rows []row
	for _, n := range sizes {
		for bi, backend := range backends {
			cfg := Config{Dir: t.TempDir()}
			if strings.HasPrefix(backend, "pg") {
				cfg = Config{PostgreSQLURL: pgURL, noTwins: backend == "pg"}
			}
			srv, err := Start(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			mc, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetMaxPoolSize(8))
			if err != nil {
				t.Fatal(err)
			}
			db := mc.Database(fmt.Sprintf("bench_%d_%d", n, bi))
			coll := db.Collection("products")
			t0 := time.Now()
			fill(ctx, t, coll, n)
			if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "customer_id", Value: 1}}}); err != nil {
				t.Fatal(err)
			}
			if err := srv.SyncIndexes(ctx); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d documents filled and indexed in %v", backend, n, time.Since(t0).Round(time.Millisecond))

			r := row{backend: backend, n: n}
			rng := rand.New(rand.NewPCG(uint64(n), 1))
			lat := latency.Sample(3*time.Second, 10, 300, func() {
				var d bson.M
				if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: docID(rng.IntN(n))}}).Decode(&d); err != nil {
					t.Fatal(err)
				}
			})
			r.idP50, r.idP99, r.idSamples = lat.At(50), lat.At(99), len(lat)
			lat = latency.Sample(3*time.Second, 10, 100, func() {
				cur, err := coll.Find(ctx, bson.D{{Key: "customer_id", Value: customerID(rng.IntN(n / 10))}})
				if err != nil {
					t.Fatal(err)
				}
				var ds []bson.M
				if err := cur.All(ctx, &ds); err != nil || len(ds) != 10 {
					t.Fatalf("customer: %d documents, %v", len(ds), err)
				}
			})
			r.custP50, r.custSamples = lat.At(50), len(lat)

			store := docstore.New(db)
			written, start := 0, time.Now()
			for rev := int64(0); time.Since(start) < 4*time.Second && written < n; rev++ {
				var models []mongo.WriteModel
				for i := written; i < min(written+store.Chunk(), n); i++ {
					models = append(models, mongo.NewReplaceOneModel().
						SetFilter(bson.D{{Key: "_id", Value: docID(i)}, {Key: "_rev", Value: int64(1)}}).
						SetReplacement(product(i, 2)))
				}
				wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				res, err := store.BulkWrite(wctx, "products", models)
				cancel()
				if err != nil {
					t.Fatalf("%s: bulk replace: %v", backend, err)
				}
				if res.Matched != int64(len(models)) {
					t.Fatalf("%s: %d of %d replaces matched", backend, res.Matched, len(models))
				}
				written += len(models)
			}
			r.replaces = float64(written) / time.Since(start).Seconds()
			rows = append(rows, r)

			_ = db.Drop(ctx)
			_ = mc.Disconnect(ctx)
			if err := srv.Stop(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n%-9s %7s | %-22s %9s | %-16s %9s | %-12s %9s\n", "backend", "docs", "FindOne(_id) p50/p99", "×1k p50", "Find(cust) p50", "×1k p50", "replaces/s", "×1k")
	base := map[string]row{}
	for _, r := range rows {
		if _, ok := base[r.backend]; !ok {
			base[r.backend] = r
		}
		b0 := base[r.backend]
		fmt.Fprintf(&b, "%-9s %7d | %8.2f / %8.2f ms %8.2f× | %10.2f ms %8.2f× | %12.0f %8.2f×   (samples %d, %d)\n", r.backend, r.n,
			ms(r.idP50), ms(r.idP99), ms(r.idP50)/ms(b0.idP50), ms(r.custP50), ms(r.custP50)/ms(b0.custP50),
			r.replaces, r.replaces/b0.replaces, r.idSamples, r.custSamples)
	}
	fmt.Print(b.String())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func docID(i int) string      { return fmt.Sprintf("0193f5a0-0000-7000-8000-%012x", i) }
func customerID(i int) string { return fmt.Sprintf("0193f5a0-0000-7000-c000-%012x", i) }

// product is a product-shaped read-model document (~400 bytes) of customer
// i/10, at revision rev.
func product(i int, rev int64) bson.D {
	reviews := bson.A{}
	for r := range 3 {
		reviews = append(reviews, bson.D{{Key: "customer_id", Value: customerID(r)}, {Key: "rating", Value: int32(1 + (i+r)%5)},
			{Key: "comment", Value: "Très bon maillot, livraison rapide."}, {Key: "at", Value: time.Date(2026, 11, 27, 9, r, 0, 0, time.UTC)}})
	}
	return bson.D{{Key: "_id", Value: docID(i)}, {Key: "_rev", Value: rev}, {Key: "registered", Value: true},
		{Key: "customer_id", Value: customerID(i / 10)},
		{Key: "title", Value: fmt.Sprintf("Maillot domicile Olympique de Marseille 1993, taille L, n°%d", i)},
		{Key: "price_cents", Value: int64(8999 + i)}, {Key: "currency", Value: "EUR"}, {Key: "stock", Value: int64(50)},
		{Key: "rating_sum", Value: int64(9)}, {Key: "rating_count", Value: int64(3)}, {Key: "reviews", Value: reviews},
		{Key: "applied", Value: bson.D{{Key: "product", Value: int64(rev)}}}}
}

func fill(ctx context.Context, t *testing.T, coll *mongo.Collection, n int) {
	t.Helper()
	for lo := 0; lo < n; lo += 1000 {
		var docs []any
		for i := lo; i < min(lo+1000, n); i++ {
			docs = append(docs, product(i, 1))
		}
		if _, err := coll.InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
	}
}
