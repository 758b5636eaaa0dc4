package replay_test

import (
	"context"
	"fmt"
	"log/slog"
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
	"shopstream/internal/kafkatest"
	"shopstream/projectors/products"
	"shopstream/projectors/replay"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// The products log BenchmarkReplay rebuilds from: per product, its
// registration, the inventory's first StockReceived, benchReservations
// StockReserved and benchReviews ReviewAdded.
const (
	benchProducts     = 500
	benchReservations = 2
	benchReviews      = 10
)

// BenchmarkReplay measures a full rebuild of the products read model from
// the log (replay.Rebuild: embedded kfake, srfake registry and FerretDB,
// all in this process) and, in the same run, the store's raw bulk-write
// rate for the same documents, so that the runner's overhead shows as a
// ratio. Each iteration is one whole rebuild, so set the count with
// -benchtime:
//
//	go test -run '^$' -bench Replay -benchtime 3x ./projectors/replay
//
// Per iteration:
//
//   - replay: replay.Rebuild of products.Projection() into a new collection
//     (the previous iteration's is dropped after DropAfter = 10 ms). Its
//     time is the Report's Elapsed: from the start to the switch of the
//     alias, so it includes the Kafka client, the offsets, the fetches,
//     decoding (Avro, registry look-ups cached by the Serde), the loads of
//     the touched documents, the fold and the writes, but not the grace
//     period before the old collection is dropped (ns/op includes that).
//   - raw (timer stopped): the rebuilt collection's documents, decoded as
//     runner.Document[products.View], inserted into a fresh empty
//     collection with the same docstore.Store (same chunks of
//     docstore.DefaultChunk, same gate), one insert per document: what
//     writing the finished read model costs, and nothing else.
//
// overhead-x is replay time / raw write time. It is not "time spent
// outside MongoDB": the runner writes each document once per batch that
// touches it (an insert the first time, then a replace filtered on _rev)
// and loads it before every batch but its first, while the raw write
// inserts it exactly once. writes/doc (the mean final _rev: the number of
// times the runner wrote each document) says how many writes the ratio
// covers; a ratio near writes/doc would mean the runner costs little more
// than its writes.
func BenchmarkReplay(b *testing.B) {
	ctx := context.Background()
	f := startStack(b)
	events := f.produceProductLog(b)

	cfg := replay.Config{Kafka: []kgo.Opt{kgo.SeedBrokers(f.brokers...)}, Serde: f.serde, Store: f.store,
		Logger: slog.New(slog.DiscardHandler), DropAfter: 10 * time.Millisecond}
	p := products.Projection()

	var (
		replayTime, rawTime time.Duration
		replayed, written   int64 // events folded, documents inserted raw
		writes              int64 // document writes by the runner (sum of final _rev)
		iter                int
	)
	for b.Loop() {
		rep, err := replay.Rebuild(ctx, p, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if rep.Events != events || rep.Documents != benchProducts || rep.Poison != 0 {
			b.Fatalf("rebuilt %d events (%d poison) into %d documents; want %d events into %d", rep.Events, rep.Poison, rep.Documents, events, benchProducts)
		}
		docs := f.documents(b, rep.To)
		revs := int64(0)
		for _, d := range docs {
			revs += d.Rev
		}
		raw := f.rawInsert(b, fmt.Sprintf("products_rawbench%d", iter), docs)
		b.Logf("replay %d events -> %d docs in %v: %.0f events/s (%.2f writes/doc); raw bulk insert of the same %d docs: %v (%.0f docs/s, %.0f events/s); the runner takes %.1fx the raw write time",
			rep.Events, rep.Documents, rep.Elapsed.Round(time.Millisecond), rep.Rate(), float64(revs)/float64(len(docs)),
			len(docs), raw.Round(time.Millisecond), float64(len(docs))/raw.Seconds(), float64(rep.Events)/raw.Seconds(), rep.Elapsed.Seconds()/raw.Seconds())
		replayTime += rep.Elapsed
		rawTime += raw
		replayed += rep.Events
		written += int64(len(docs))
		writes += revs
		iter++
		b.StartTimer()
	}
	b.ReportMetric(float64(replayed)/replayTime.Seconds(), "events/s")
	b.ReportMetric(float64(written)/rawTime.Seconds(), "raw-docs/s")
	b.ReportMetric(float64(replayed)/rawTime.Seconds(), "raw-events/s")
	b.ReportMetric(replayTime.Seconds()/rawTime.Seconds(), "overhead-x")
	b.ReportMetric(float64(writes)/float64(written), "writes/doc")
	b.Logf("over %d rebuilds: replay %.0f events/s; raw bulk insert %.0f docs/s (%.0f events/s); the runner takes %.1fx the raw write time for %.2f writes/doc",
		iter, float64(replayed)/replayTime.Seconds(), float64(written)/rawTime.Seconds(), float64(replayed)/rawTime.Seconds(),
		replayTime.Seconds()/rawTime.Seconds(), float64(writes)/float64(written))
}

type benchStack struct {
	brokers []string
	serde   *eventlog.Serde
	db      *mongo.Database
	store   *docstore.Store
}

// startStack starts an embedded Kafka (with the event-log topics), a
// registry and FerretDB, stopped when b ends.
func startStack(b *testing.B) *benchStack {
	b.Helper()
	ctx := context.Background()
	brokers := kafkatest.Embedded(b)
	kafkatest.EnsureTopics(b, brokers)
	reg, err := registry.Start(registry.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = reg.Stop(ctx) })
	rc, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		b.Fatal(err)
	}
	cat, err := schemas.Load()
	if err != nil {
		b.Fatal(err)
	}
	fdb, err := ferret.Start(ctx, ferret.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = fdb.Stop(ctx) })
	mc, err := mongo.Connect(options.Client().ApplyURI(fdb.URI()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = mc.Disconnect(ctx) })
	db := mc.Database("shop")
	return &benchStack{brokers: brokers, serde: eventlog.NewSerde(rc, cat), db: db, store: docstore.New(db)}
}

// produceProductLog writes the benchmark's products log as the outbox
// relay does (Avro value, metadata headers, keyed by product id, the
// default partitioner) and returns how many records it wrote. Products are
// registered first, then stocked; reservations and reviews come in rounds
// over all products, so that every batch of a rebuild touches many
// documents.
func (f *benchStack) produceProductLog(b *testing.B) int64 {
	b.Helper()
	ctx := context.Background()
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	versions := map[string]int64{}
	var recs []*kgo.Record
	add := func(productID string, ev schemas.Event) {
		ty, err := f.serde.Catalog().TypeOf(ev)
		if err != nil {
			b.Fatal(err)
		}
		value, err := f.serde.Encode(ctx, ty.Topic, ev)
		if err != nil {
			b.Fatal(err)
		}
		stream := ty.Topic + "/" + productID
		versions[stream]++
		m := eventlog.Metadata{EventID: fmt.Sprintf("0193f5a0-0000-7000-9000-%012x", len(recs)+1), Type: ty.Name, Source: "shopstream/bench",
			AggregateID: productID, AggregateVersion: versions[stream], OccurredAt: t0.Add(time.Duration(len(recs)) * time.Second),
			CorrelationID: "bench", CausationID: "bench"}
		recs = append(recs, &kgo.Record{Topic: ty.Topic, Key: []byte(productID), Value: value, Headers: m.Headers()})
	}
	id := func(i int) string { return fmt.Sprintf("0193f5a0-0000-7000-8000-%012x", i) }
	const stock = 50
	for i := range benchProducts {
		photo := fmt.Sprintf("https://cdn.example.org/photos/%s.jpg", id(i))
		add(id(i), schemas.ProductRegistered{ProductID: id(i), Title: fmt.Sprintf("Maillot domicile Olympique de Marseille 1993, taille L, n°%d", i),
			PriceCents: int64(8999 + i%1000), Currency: "EUR", InitialStock: stock, PhotoURL: &photo})
	}
	for i := range benchProducts {
		add(id(i), schemas.StockReceived{ProductID: id(i), Quantity: stock, Available: stock, CatalogVersion: 1})
	}
	for r := range benchReviews {
		for i := range benchProducts {
			if r < benchReservations {
				add(id(i), schemas.StockReserved{ProductID: id(i), OrderID: fmt.Sprintf("0193f5a0-0000-7000-a000-%012x", r*benchProducts+i),
					Quantity: 1, Remaining: int32(stock - 1 - r)})
			}
			add(id(i), schemas.ReviewAdded{ReviewID: fmt.Sprintf("0193f5a0-0000-7000-b000-%012x", r*benchProducts+i), ProductID: id(i),
				CustomerID: fmt.Sprintf("0193f5a0-0000-7000-c000-%012x", (i*7+r)%997), Rating: int32(1 + (i+r)%5),
				Comment: "Très bon maillot, taille un peu grand, livraison rapide."})
		}
	}
	cl := kafkatest.Client(b, f.brokers, kgo.ProducerLinger(2*time.Millisecond))
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	return int64(len(recs))
}

// documents reads every document of collection coll.
func (f *benchStack) documents(b *testing.B, coll string) []runner.Document[products.View] {
	b.Helper()
	ctx := context.Background()
	cur, err := f.db.Collection(coll).Find(ctx, bson.D{})
	if err != nil {
		b.Fatal(err)
	}
	var docs []runner.Document[products.View]
	if err := cur.All(ctx, &docs); err != nil {
		b.Fatal(err)
	}
	return docs
}

// rawInsert inserts docs into a new collection coll with the benchmark's
// docstore.Store, one insert per document, and returns the time the bulk
// write took; the collection is created before and dropped after.
func (f *benchStack) rawInsert(b *testing.B, coll string, docs []runner.Document[products.View]) time.Duration {
	b.Helper()
	ctx := context.Background()
	if err := f.db.CreateCollection(ctx, coll); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = f.db.Collection(coll).Drop(ctx) }()
	models := make([]mongo.WriteModel, len(docs))
	for i, d := range docs {
		models[i] = mongo.NewInsertOneModel().SetDocument(d)
	}
	began := time.Now()
	res, err := f.store.BulkWrite(ctx, coll, models)
	took := time.Since(began)
	if err != nil {
		b.Fatal(err)
	}
	if res.Inserted != int64(len(docs)) {
		b.Fatalf("inserted %d of %d documents", res.Inserted, len(docs))
	}
	return took
}
