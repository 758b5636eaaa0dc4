package replay_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/internal/devinfra/embedded/ferret/ferrettest"
	"shopstream/internal/platform/docstore"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/testinfra/eventlogtest"
	"shopstream/internal/testinfra/kafkatest"
	"shopstream/internal/testinfra/testenv"
	"shopstream/projectors/products"
	"shopstream/projectors/replay"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// Knobs of BenchmarkReplay: the size of the products log it rebuilds.
const (
	envBenchProducts = "SHOP_BENCH_REPLAY_PRODUCTS" // products; default 150
	envBenchReviews  = "SHOP_BENCH_REPLAY_REVIEWS"  // reviews per product; default 35
	envBenchBackend  = "SHOP_BENCH_REPLAY_BACKEND"  // FerretDB's backend: postgresql (default, as shop dev) or sqlite
)

// benchReservations is how many StockReserved each product gets.
const benchReservations = 2

// BenchmarkReplay measures a full rebuild of the products read model from
// the log (replay.Rebuild over an embedded kfake, registry and FerretDB, all
// in this process) and, in the same run, the store's raw bulk-write rate
// for the same documents, so that the runner's overhead shows as a ratio.
// Each iteration is one whole rebuild, so set the count with -benchtime:
//
//	go test -run '^$' -bench Replay -benchtime 3x ./projectors/replay
//
// The log holds, per product, its registration, the inventory's first
// StockReceived, 2 StockReserved and R ReviewAdded (R reviews; the document
// keeps the latest 10), keyed by product id over the topics' 6 partitions:
// with the defaults, 150 products and 5,850 events (2,000 products, 78,000
// events with SHOP_BENCH_REPLAY_PRODUCTS=2000, where a rebuild's fixed
// costs weigh less). SHOP_BENCH_REPLAY_PRODUCTS and SHOP_BENCH_REPLAY_REVIEWS
// change the sizes. The store is FerretDB on PostgreSQL, as shop dev runs
// it (SHOP_BENCH_REPLAY_BACKEND=sqlite for FerretDB's SQLite backend,
// whose look-ups scan).
//
// Per iteration:
//
//   - replay (timed): replay.Rebuild of products.Projection() into a new
//     collection; the previous iteration's is dropped after DropAfter =
//     10 ms. Its time is the Report's Elapsed, from the start to the switch
//     of the alias: the Kafka client, the offsets, the collection and its
//     indexes, the fetches, the Avro decoding, the fold and the writes, but
//     not the grace period before the old collection is dropped (ns/op
//     includes that and the final count).
//   - raw (timer stopped): the rebuilt collection's documents, decoded as
//     runner.Document[products.View], inserted into a fresh empty
//     collection with the same docstore.Store (chunks of
//     docstore.DefaultChunk, the same gate), one insert per document: what
//     writing the finished read model costs, and nothing else.
//
// overhead-x is replay time / raw write time, and replay/raw its inverse:
// the replay's rate over the raw insert's, for the same documents. The
// rebuild's runner holds what it folds and writes it at the end of the
// catch-up (runner.Into), so writes/doc, the mean final _rev, is 1 unless
// the log holds more than runner.RebuildHeld documents, and it looks up
// only documents it wrote.
//
// To tell the runner's own cost from the store's, the benchmark's MongoDB
// client times every command (from the driver's send to the reply) that
// starts within a rebuild's Elapsed: store-% is their sum over the replay
// time, per command kind in the log (above 100% when the stripes of
// docstore.BulkWriteDocs write side by side); nonstore-ns/event is what is
// left (Kafka, Avro decoding, the fold, BSON encoding and decoding in the
// client) per event, negative when the stripes overlap; replace-ms is the
// update commands' time per replace (the alias's few updates aside).
func BenchmarkReplay(b *testing.B) {
	ctx := context.Background()
	nProducts, nReviews := testenv.Int(b, envBenchProducts, 150), testenv.Int(b, envBenchReviews, 35)
	f := startStack(b)
	events := f.produceProductLog(b, nProducts, nReviews)

	cfg := replay.Config{Kafka: []kgo.Opt{kgo.SeedBrokers(f.brokers...)}, Serde: f.serde, Store: f.store,
		Logger: slog.New(slog.DiscardHandler), DropAfter: 10 * time.Millisecond}
	p := products.Projection()

	var (
		replayTime, rawTime time.Duration
		replayed, written   int64 // events folded, documents inserted raw
		writes              int64 // document writes by the runner (sum of final _rev)
		iter                int
		inStore             = map[string]time.Duration{} // command time within the replays, per command
		commands            = map[string]int{}
	)
	for b.Loop() {
		f.cmds.reset()
		began := time.Now()
		rep, err := replay.Rebuild(ctx, p, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		store := time.Duration(0)
		for _, c := range f.cmds.since(began, rep.Elapsed) {
			inStore[c.name] += c.took
			commands[c.name]++
			store += c.took
		}
		if rep.Events != events || rep.Documents != int64(nProducts) || rep.Poison != 0 {
			b.Fatalf("rebuilt %d events (%d poison) into %d documents; want %d events into %d", rep.Events, rep.Poison, rep.Documents, events, nProducts)
		}
		docs := f.documents(b, rep.To)
		revs := int64(0)
		for _, d := range docs {
			revs += d.Rev
		}
		raw := f.rawInsert(b, fmt.Sprintf("products_rawbench%d", iter), docs)
		b.Logf("replay %d events -> %d docs in %v: %.0f events/s (%.2f writes/doc, %.0f%% in MongoDB commands); raw bulk insert of the same %d docs: %v (%.0f docs/s, %.0f events/s); the runner takes %.1fx the raw write time",
			rep.Events, rep.Documents, rep.Elapsed.Round(time.Millisecond), rep.Rate(), float64(revs)/float64(len(docs)), 100*store.Seconds()/rep.Elapsed.Seconds(),
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
	b.ReportMetric(rawTime.Seconds()/replayTime.Seconds(), "replay/raw") // the rates' ratio, the figure
	b.ReportMetric(float64(writes)/float64(written), "writes/doc")
	b.Logf("over %d rebuilds: replay %.0f events/s; raw bulk insert %.0f docs/s (%.0f events/s); the runner takes %.1fx the raw write time, for %.2f writes/doc",
		iter, float64(replayed)/replayTime.Seconds(), float64(written)/rawTime.Seconds(), float64(replayed)/rawTime.Seconds(),
		replayTime.Seconds()/rawTime.Seconds(), float64(writes)/float64(written))

	// Where the time goes: the MongoDB commands within the replays.
	n := float64(iter)
	var store time.Duration
	var kinds []string
	for _, name := range slices.Sorted(maps.Keys(inStore)) {
		store += inStore[name]
		kinds = append(kinds, fmt.Sprintf("%s %.2fs (%d)", name, inStore[name].Seconds()/n, commands[name]/iter))
	}
	replaces := float64(writes-written) / n
	b.ReportMetric(100*store.Seconds()/replayTime.Seconds(), "store-%")
	b.ReportMetric(float64((replayTime-store).Nanoseconds())/float64(replayed), "nonstore-ns/event")
	if replaces > 0 {
		b.ReportMetric(ms(inStore["update"])/n/replaces, "replace-ms")
	}
	b.Logf("per rebuild: %.2fs, of which %.2fs in MongoDB commands (%.0f%%: %s; %.0f replaces at %.1fms each in the updates), %.2fs elsewhere (%.0fns per event: Kafka, decoding, the fold, BSON)",
		replayTime.Seconds()/n, store.Seconds()/n, 100*store.Seconds()/replayTime.Seconds(), strings.Join(kinds, ", "),
		replaces, ms(inStore["update"])/n/max(replaces, 1), (replayTime-store).Seconds()/n, float64((replayTime-store).Nanoseconds())/float64(replayed))
}

// commandTimes records the MongoDB commands a client sends, with the time
// each took from the driver's send to the reply.
type commandTimes struct {
	mu   sync.Mutex
	cmds []command
}

type command struct {
	name  string
	start time.Time
	took  time.Duration
}

func (c *commandTimes) monitor() *event.CommandMonitor {
	done := func(name string, took time.Duration) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.cmds = append(c.cmds, command{name: name, start: time.Now().Add(-took), took: took})
	}
	return &event.CommandMonitor{
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) { done(e.CommandName, e.Duration) },
		Failed:    func(_ context.Context, e *event.CommandFailedEvent) { done(e.CommandName, e.Duration) },
	}
}

func (c *commandTimes) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cmds = nil
}

// since lists the commands that started within d of t.
func (c *commandTimes) since(t time.Time, d time.Duration) []command {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []command
	for _, cmd := range c.cmds {
		if !cmd.start.Before(t) && cmd.start.Before(t.Add(d)) {
			out = append(out, cmd)
		}
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type benchStack struct {
	cmds    *commandTimes // every command of db's client
	brokers []string
	serde   *eventlog.Serde
	db      *mongo.Database
	store   *docstore.Store
}

// startStack starts an embedded Kafka (with the event-log topics), a
// registry and FerretDB, stopped when b ends.
func startStack(b *testing.B) *benchStack {
	b.Helper()
	brokers := kafkatest.Embedded(b)
	kafkatest.EnsureTopics(b, brokers)
	serde, _ := eventlogtest.Serde(b)
	fdb := ferrettest.Start(b, os.Getenv(envBenchBackend))
	cmds := &commandTimes{}
	db := ferrettest.Connect(b, fdb, options.Client().SetMonitor(cmds.monitor())).Database("shop")
	return &benchStack{cmds: cmds, brokers: brokers, serde: serde, db: db, store: docstore.New(db)}
}

// produceProductLog writes the benchmark's products log as the outbox
// relay does (Avro value, metadata headers, keyed by product id, the
// default partitioner) and returns how many records it wrote. Products are
// registered first, then stocked; reservations and reviews come in rounds
// over all products, so that every batch of a rebuild touches many
// documents.
func (f *benchStack) produceProductLog(b *testing.B, nProducts, nReviews int) int64 {
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
	for i := range nProducts {
		photo := fmt.Sprintf("https://cdn.example.org/photos/%s.jpg", id(i))
		add(id(i), schemas.ProductRegistered{ProductID: id(i), Title: fmt.Sprintf("Maillot domicile Olympique de Marseille 1993, taille L, n°%d", i),
			PriceCents: int64(8999 + i%1000), Currency: "EUR", InitialStock: stock, PhotoURL: &photo})
	}
	for i := range nProducts {
		add(id(i), schemas.StockReceived{ProductID: id(i), Quantity: stock, Available: stock, CatalogVersion: 1})
	}
	for r := range max(nReviews, benchReservations) {
		for i := range nProducts {
			if r < benchReservations {
				add(id(i), schemas.StockReserved{ProductID: id(i), OrderID: fmt.Sprintf("0193f5a0-0000-7000-a000-%012x", r*nProducts+i),
					Quantity: 1, Remaining: int32(stock - 1 - r)})
			}
			if r >= nReviews {
				continue
			}
			add(id(i), schemas.ReviewAdded{ReviewID: fmt.Sprintf("0193f5a0-0000-7000-b000-%012x", r*nProducts+i), ProductID: id(i),
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
