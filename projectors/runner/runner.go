// Package runner holds the plumbing every projector shares: consume the
// projection's topics in a consumer group, decode the records (upcast to the
// current event versions), fold them into documents with the projection's
// pure Apply, write the changed documents to MongoDB in chunked bulk writes,
// and only then commit the offsets (the checkpoint).
//
// Guarantees: at-least-once input, exactly-once effect. A batch is applied
// as: load the touched documents (a live runner takes those it wrote or
// read last from memory, and those the batch creates as new, without a
// look-up), fold every event in order, replace each document with a
// filter on the revision it was loaded at (a wrong guess fails it, and
// the batch is folded again from look-ups). The folds skip
// events whose aggregate version a document has already seen, so a
// redelivered or replayed event changes nothing; the revision filter makes
// a concurrent writer (a rebalance handing a partition over mid-batch) lose
// cleanly, after which the batch is folded again from fresh documents.
// Offsets are committed only after the write, so a crash replays the batch.
//
// The runner writes into the collection its projection's alias names (see
// [Aliases]), resolved again for every batch, so a rebuild can switch the
// live runner to a new collection while it runs. A poison record (one that
// can never be decoded) is parked on its topic's dead-letter topic before
// the batch's offsets are committed; the partition keeps flowing.
//
// Each record folded runs under a consumer span, child of the record's
// traceparent (see [Runner.WithTracing]), which ends once its batch is
// written. [Runner.Checkpoint] tells how fresh the runner's progress is.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.opentelemetry.io/otel/trace"

	"shopstream/internal/platform/docstore"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/kafkagroup"
	"shopstream/internal/platform/tracing"
)

// Projection describes one read model. V is its document type, without _id
// (the runner stores documents as {_id, _rev, ...V}).
type Projection[V any] struct {
	Name    string   // e.g. "products"
	Version int      // bump to ask for a rebuild: new group, new collection
	Topics  []string // topics it folds
	// DocID names the document an event changes; "" ignores the event.
	DocID func(env eventlog.Envelope) string
	// Apply folds one event into a document. Pure; it must leave the
	// document unchanged for an event it has already applied.
	Apply func(doc V, env eventlog.Envelope) V
	// Creates, when set, reports whether env is the event that creates its
	// document (a registration: the first version of its stream). A live
	// runner does not look up a document whose first event in a batch
	// creates it, and inserts it. If the document exists after all (the
	// event redelivered, or events of another stream folded before it),
	// the insert fails on its _id, and the batch is folded and written
	// again with every document looked up: nothing is lost, the look-up is
	// saved in the common case.
	Creates func(env eventlog.Envelope) bool
	// Indexes the query side needs (beside _id's): every field a reader
	// filters on, first. Created (CreateMany, idempotent) on every
	// collection the projection is written to, when its runner starts and
	// before its first write. On the embedded FerretDB each one's first
	// field also gets an index serving FerretDB's pushed-down equality
	// (see internal/devinfra/embedded/ferret).
	Indexes []mongo.IndexModel
	// Readable is the field every document readers may see has (e.g.
	// {registered: true}): a document folded only from events that arrived
	// before its creation event is not. [Reader] adds it to every read;
	// empty Key: every document is readable.
	Readable bson.E
}

// GroupPrefix begins the consumer group of every projection (see
// [Projection.Group]), and no other group.
const GroupPrefix = "shop.projector."

// Group is the projection's consumer group.
func (p Projection[V]) Group() string { return fmt.Sprintf("%s%s.v%d", GroupPrefix, p.Name, p.Version) }

// Collection is the projection's MongoDB collection.
func (p Projection[V]) Collection() string { return fmt.Sprintf("%s_v%d", p.Name, p.Version) }

// Document is how a document is stored.
type Document[V any] struct {
	ID   string `bson:"_id"`
	Rev  int64  `bson:"_rev"`
	View V      `bson:",inline"`
}

// Runner runs one projection.
type Runner[V any] struct {
	p       Projection[V]
	serde   *eventlog.Serde
	store   *docstore.Store
	aliases *Aliases
	log     *slog.Logger
	group   string      // p.Group()
	fixed   string      // the collection to write, "" for the alias target
	rebuild *rebuild[V] // a runner made by Into: what it holds and wrote; nil for a live runner

	indexed  sync.Map  // collection -> true once its indexes exist
	recent   recent[V] // a live runner's documents as it last wrote or read them
	poisoned atomic.Int64

	tracer trace.Tracer
	traced bool // WithTracing was given a provider: records get consumer spans
	// progress is when Run last committed a batch or found itself caught
	// up (unix ns); waiting is when Run began waiting for records with
	// none in hand (0 while it has some); fetched is when the client last
	// read a fetch response (see Checkpoint).
	progress, waiting atomic.Int64
	commitFailed      atomic.Bool // the last commit failed
	fetched           fetchWatch
}

// fetchWatch is a client hook noting when a fetch response was last read.
type fetchWatch struct{ at atomic.Int64 }

// OnBrokerRead implements kgo.HookBrokerRead.
func (f *fetchWatch) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == int16(kmsg.Fetch) && err == nil {
		f.at.Store(time.Now().UnixNano())
	}
}

// New returns a runner of p writing through store.
func New[V any](p Projection[V], serde *eventlog.Serde, store *docstore.Store, log *slog.Logger) *Runner[V] {
	return &Runner[V]{p: p, serde: serde, store: store, aliases: NewAliases(store.Database()), group: p.Group(),
		log: log.With("component", "projector", "projection", p.Name), tracer: tracing.OrNoop(nil).Tracer(tracerName)}
}

const tracerName = "shopstream/projectors/runner"

// WithTracing makes r trace with tp: every record it folds runs under a
// consumer span, child of the record's traceparent. Without it (or with a
// nil tp), records get no span at all. Call it before Run; it returns r.
func (r *Runner[V]) WithTracing(tp trace.TracerProvider) *Runner[V] {
	r.tracer = tracing.OrNoop(tp).Tracer(tracerName)
	r.traced = tp != nil
	return r
}

// Into returns a runner of the same projection that writes into coll
// whatever the alias says: a rebuild's new or scratch collection, empty
// when Into is called, of which the runner is the only writer. It holds
// the documents it folds in memory (up to [RebuildHeld] of them) and writes
// them at [Runner.Flush], so that most documents of a rebuild are written
// once, as inserts, and it loads only documents it has written itself.
// Its batches must be applied one at a time, and Flush called before the
// collection is read.
func (r *Runner[V]) Into(coll string) *Runner[V] {
	return &Runner[V]{p: r.p, serde: r.serde, store: r.store, aliases: r.aliases, group: r.group, log: r.log.With("collection", coll), fixed: coll,
		tracer: r.tracer, traced: r.traced, rebuild: newRebuild[V]()}
}

// Checkpoint is the last time Run was known to be up to date: the later
// of its last committed batch and the last fetch response its client read
// while Run waited with every record in hand folded and committed (an
// idle runner is caught up: its fetches, answered every FetchMaxWait,
// bring nothing new). It is the start of Run before either happens, and
// the zero time before Run. The age of the checkpoint stays below a
// second for a caught-up runner, grows while a batch takes long or its
// commits fail, and grows while the broker does not answer its fetches.
func (r *Runner[V]) Checkpoint() time.Time {
	at := r.progress.Load()
	if w := r.waiting.Load(); w != 0 && !r.commitFailed.Load() {
		if f := r.fetched.at.Load(); f > w {
			at = max(at, f)
		}
	}
	if at == 0 {
		return time.Time{}
	}
	return time.Unix(0, at)
}

// Projection is the projection r runs.
func (r *Runner[V]) Projection() Projection[V] { return r.p }

// Poisoned is how many poison records r has skipped.
func (r *Runner[V]) Poisoned() int64 { return r.poisoned.Load() }

// Target is the collection the next batch is written to, its indexes
// created. While a rebuild switches the alias, it waits for the switch to
// end (see [Aliases]).
func (r *Runner[V]) Target(ctx context.Context) (string, error) {
	coll := r.fixed
	if coll == "" {
		var err error
		if coll, err = r.aliases.WriteTarget(ctx, r.p.Collection(), 50*time.Millisecond); err != nil {
			return "", err
		}
	}
	if _, done := r.indexed.Load(coll); done || len(r.p.Indexes) == 0 {
		return coll, nil
	}
	if _, err := r.store.Collection(coll).Indexes().CreateMany(ctx, r.p.Indexes); err != nil {
		return "", fmt.Errorf("indexes of %s: %w", coll, err)
	}
	r.indexed.Store(coll, true)
	return coll, nil
}

// ClientOpts are the consumer options the runner needs, with the shop's
// group settings (kafkagroup.Opts: a runner that dies without leaving the
// group has its partitions taken over within about 10 s and a rebalance,
// not franz-go's default 45 s); the caller adds the seed brokers and
// anything else (logging, metrics).
func (r *Runner[V]) ClientOpts() []kgo.Opt {
	return append([]kgo.Opt{
		kgo.ConsumerGroup(r.group),
		kgo.ConsumeTopics(r.p.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.WithHooks(&r.fetched),
	}, kafkagroup.Opts()...)
}

// Run consumes with client (built with ClientOpts) until ctx ends.
func (r *Runner[V]) Run(ctx context.Context, client *kgo.Client) error {
	r.progress.Store(time.Now().UnixNano())
	// The projection's indexes exist before its first read or write (the
	// first batch creates them otherwise).
	if _, err := r.Target(ctx); err != nil && ctx.Err() == nil {
		r.log.Warn("indexes not created yet; the first batch tries again", "err", err)
	}
	for {
		r.waiting.Store(time.Now().UnixNano())
		fs := client.PollRecords(ctx, 2000)
		r.waiting.Store(0)
		if ctx.Err() != nil {
			client.AllowRebalance()
			return nil
		}
		fs.EachError(func(topic string, p int32, err error) {
			r.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
		})
		recs := fs.Records()
		if len(recs) > 0 {
			if err := r.applyWithRetry(ctx, recs, r.deadLetter(client)); err != nil {
				client.AllowRebalance()
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if err := client.CommitRecords(ctx, recs...); err != nil && ctx.Err() == nil {
				r.log.Warn("commit failed; the batch will be replayed after a restart", "err", err)
				r.commitFailed.Store(true) // idle fetches no longer mean caught up
			} else if err == nil {
				r.progress.Store(time.Now().UnixNano())
				r.commitFailed.Store(false)
			}
		}
		client.AllowRebalance()
	}
}

// deadLetter parks a poison record on its dead-letter topic with client,
// waiting for the broker's acknowledgement.
// A record is parked once even when its batch is applied again after a
// failed write.
func (r *Runner[V]) deadLetter(client *kgo.Client) func(context.Context, *kgo.Record, error) error {
	parked := map[*kgo.Record]bool{}
	return func(ctx context.Context, rec *kgo.Record, cause error) error {
		if parked[rec] {
			return nil
		}
		if err := client.ProduceSync(ctx, eventlog.DeadLetter(rec, r.group, cause, time.Now())).FirstErr(); err != nil {
			return fmt.Errorf("dead-letter %s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
		}
		parked[rec] = true
		return nil
	}
}

// ApplyWithRetry applies a batch like [Runner.Apply], retrying transient
// failures (a registry or MongoDB outage, a concurrent writer) with backoff
// until it succeeds or ctx ends.
func (r *Runner[V]) ApplyWithRetry(ctx context.Context, recs []*kgo.Record) error {
	return r.applyWithRetry(ctx, recs, nil)
}

// applyWithRetry applies a batch, retrying transient failures with backoff
// until ctx ends; nothing is skipped but poison, which goes to poison.
func (r *Runner[V]) applyWithRetry(ctx context.Context, recs []*kgo.Record, poison func(context.Context, *kgo.Record, error) error) error {
	backoff := 50 * time.Millisecond
	for {
		err := r.apply(ctx, recs, poison)
		if err == nil || ctx.Err() != nil {
			return err
		}
		r.log.Warn("batch failed; retrying", "records", len(recs), "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Apply folds a batch of records into the target collection. Poison
// records are logged, counted and skipped (they never become readable by
// retrying; [Runner.Run] also dead-letters them); a registry outage or a
// write failure returns an error and the whole batch can be applied again.
func (r *Runner[V]) Apply(ctx context.Context, recs []*kgo.Record) error {
	return r.apply(ctx, recs, nil)
}

// apply folds recs; each record's span ends with the batch, with its error.
func (r *Runner[V]) apply(ctx context.Context, recs []*kgo.Record, poison func(context.Context, *kgo.Record, error) error) (err error) {
	coll, err := r.Target(ctx)
	if err != nil {
		return err
	}
	decoded := r.decode(ctx, recs)
	defer func() {
		for _, d := range decoded {
			if d.span != nil {
				tracing.End(d.span, err)
			}
		}
	}()
	var order []string
	byDoc := map[string][]eventlog.Envelope{}
	for i := range decoded {
		d := &decoded[i]
		if errors.Is(d.err, eventlog.ErrPoison) {
			if d.span != nil {
				tracing.End(d.span, d.err)
				d.span = nil
			}
			r.log.Error("poison record skipped", "topic", d.rec.Topic, "partition", d.rec.Partition, "offset", d.rec.Offset, "err", d.err)
			if poison != nil {
				if err := poison(ctx, d.rec, d.err); err != nil {
					return err
				}
			}
			r.poisoned.Add(1)
			continue
		}
		if d.err != nil {
			return d.err
		}
		id := r.p.DocID(d.env)
		if id == "" {
			continue
		}
		if _, seen := byDoc[id]; !seen {
			order = append(order, id)
		}
		byDoc[id] = append(byDoc[id], d.env)
	}
	if len(order) == 0 {
		return nil
	}
	err = r.foldAndWrite(ctx, coll, order, byDoc, len(recs), r.rebuild == nil)
	if errors.Is(err, errGuessedWrong) {
		err = r.foldAndWrite(ctx, coll, order, byDoc, len(recs), false)
	}
	return err
}

// errGuessedWrong reports that a document a live runner did not look up
// was not as it guessed: one taken as new exists, or one it remembered has
// moved on.
var errGuessedWrong = errors.New("a document was not as guessed")

// foldAndWrite loads the documents of ids, folds their events and writes
// (or, for a rebuild, holds) the changes. With guess set (a live runner),
// a document is not looked up when the runner remembers it as it last
// wrote or read it (see [RecentDocs]), nor when its first event creates it
// (Projection.Creates), which takes it as new; if a guess was wrong, the
// write fails with errGuessedWrong, what it wrote is left as the revision
// guards make it, and the batch's documents are forgotten.
func (r *Runner[V]) foldAndWrite(ctx context.Context, coll string, ids []string, events map[string][]eventlog.Envelope, records int, guess bool) error {
	var assumedNew map[string]bool
	var remembered map[string]Document[V]
	if guess {
		remembered = r.recent.get(coll, ids)
		if r.p.Creates != nil {
			assumedNew = map[string]bool{}
			for _, id := range ids {
				if _, known := remembered[id]; !known && r.p.Creates(events[id][0]) {
					assumedNew[id] = true
				}
			}
		}
	}
	current, err := r.current(ctx, coll, ids, assumedNew, remembered)
	if err != nil {
		return err
	}
	changes := r.fold(ids, events, current, records)
	if r.rebuild != nil {
		return r.rebuild.hold(ctx, r, coll, changes)
	}
	err = r.write(ctx, coll, changes)
	if err != nil {
		if len(assumedNew) > 0 && mongo.IsDuplicateKeyError(err) || len(remembered) > 0 && errors.Is(err, ErrConcurrentWrite) {
			r.recent.forget(ids)
			return fmt.Errorf("%w: %w", errGuessedWrong, err)
		}
		return err
	}
	r.remember(coll, current, changes)
	return nil
}

// remember notes the documents a batch found (those that exist) and then
// those it wrote, at their new revisions.
func (r *Runner[V]) remember(coll string, current map[string]change[V], changes []change[V]) {
	docs := make([]Document[V], 0, len(current)+len(changes))
	for _, c := range current {
		if c.stored > 0 {
			docs = append(docs, c.doc)
		}
	}
	for _, c := range changes {
		docs = append(docs, c.doc)
	}
	r.recent.put(coll, docs)
}

// fold folds each document's events, in order, into the document as the
// batch found it, and returns the documents that changed, in the order of
// ids. A batch of many records is folded on every core, each document on
// one (Apply is pure).
func (r *Runner[V]) fold(ids []string, events map[string][]eventlog.Envelope, current map[string]change[V], records int) []change[V] {
	out := make([]change[V], len(ids))
	changed := make([]bool, len(ids))
	foldRange := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			cur := current[ids[i]]
			next := cur.doc.View
			for _, env := range events[ids[i]] {
				next = r.p.Apply(next, env)
			}
			if cur.doc.Rev > 0 && reflect.DeepEqual(next, cur.doc.View) {
				continue // a redelivery: nothing to write
			}
			out[i] = change[V]{doc: Document[V]{ID: ids[i], Rev: cur.stored + 1, View: next}, stored: cur.stored}
			changed[i] = true
		}
	}
	spread(len(ids), records >= parallelBatch, foldRange)
	n := 0
	for i := range out {
		if changed[i] {
			out[n] = out[i]
			n++
		}
	}
	return out[:n]
}

// spread runs do over [0, n) in contiguous runs, one per core when
// parallel is set, else at once on the caller's goroutine.
func spread(n int, parallel bool, do func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if !parallel || workers == 1 || n < 2 {
		do(0, n)
		return
	}
	var wg sync.WaitGroup
	per := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += per {
		wg.Go(func() { do(lo, min(lo+per, n)) })
	}
	wg.Wait()
}

// decoded is one record of a batch, read.
type decoded struct {
	rec  *kgo.Record
	env  eventlog.Envelope
	err  error
	span trace.Span // ended with the batch
}

// parallelBatch is the batch size from which decode and fold spread their
// work over GOMAXPROCS goroutines.
const parallelBatch = 512

// decode reads recs, in order, each under its consumer span when r is
// traced; a large batch is read on every core, in contiguous runs.
func (r *Runner[V]) decode(ctx context.Context, recs []*kgo.Record) []decoded {
	out := make([]decoded, len(recs))
	spread(len(recs), len(recs) >= parallelBatch, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			d := decoded{rec: recs[i]}
			rctx := ctx
			if r.traced {
				rctx, d.span = tracing.StartConsumer(ctx, r.tracer, r.group, recs[i])
			}
			d.env, d.err = r.serde.Read(rctx, recs[i])
			out[i] = d
		}
	})
	return out
}

// change is a document to write at its new revision, and the revision the
// target holds (0: none, so the write is an insert).
type change[V any] struct {
	doc    Document[V]
	stored int64
}

// current is, for each of ids, the document as the batch finds it and the
// revision stored: a rebuild's held document, or the remembered one, or
// the stored one, or a zero document at revision 0 (without a look-up for
// those in assumedNew).
func (r *Runner[V]) current(ctx context.Context, coll string, ids []string, assumedNew map[string]bool, remembered map[string]Document[V]) (map[string]change[V], error) {
	load := ids
	switch {
	case r.rebuild != nil:
		load = r.rebuild.mayExist(ids)
	case len(assumedNew) > 0 || len(remembered) > 0:
		load = make([]string, 0, len(ids))
		for _, id := range ids {
			if _, known := remembered[id]; !known && !assumedNew[id] {
				load = append(load, id)
			}
		}
	}
	stored, err := r.load(ctx, coll, load)
	if err != nil {
		return nil, err
	}
	out := make(map[string]change[V], len(ids))
	for _, id := range ids {
		if held, ok := r.rebuild.lookup(id); ok {
			out[id] = held
			continue
		}
		doc, ok := remembered[id]
		if !ok {
			doc, ok = stored[id]
		}
		if !ok {
			doc.ID = id
		}
		out[id] = change[V]{doc: doc, stored: doc.Rev}
	}
	return out, nil
}

// write writes changes, one write per document, its stripes side by side
// (see docstore.Store.BulkWriteDocs): a new document is an insert, which
// fails on a duplicate _id if a concurrent writer created it first (and is
// much cheaper than an upsert on FerretDB); an existing one a replace
// filtered on the revision it was loaded at.
func (r *Runner[V]) write(ctx context.Context, coll string, changes []change[V]) error {
	if len(changes) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, len(changes))
	ids := make([]string, len(changes))
	var replaces int64
	for i, c := range changes {
		ids[i] = c.doc.ID
		if c.stored == 0 {
			models[i] = mongo.NewInsertOneModel().SetDocument(c.doc)
			continue
		}
		replaces++
		models[i] = mongo.NewReplaceOneModel().
			SetFilter(bson.D{{Key: "_id", Value: c.doc.ID}, {Key: "_rev", Value: c.stored}}).
			SetReplacement(c.doc)
	}
	res, err := r.store.BulkWriteDocs(ctx, coll, ids, models)
	if err != nil {
		return fmt.Errorf("write %d documents: %w", len(models), err)
	}
	if res.Matched < replaces {
		// Another writer moved some documents past the revision they were
		// loaded at; the batch is folded again from fresh documents (the
		// documents this write did change are left as the guards make them).
		return fmt.Errorf("%w: %d of %d documents changed since they were read", ErrConcurrentWrite, replaces-res.Matched, replaces)
	}
	return nil
}

// ErrConcurrentWrite reports that another writer changed documents of a
// batch between their load and their write; applying the batch again
// resolves it.
var ErrConcurrentWrite = errors.New("concurrent write")

// load reads the documents of a batch; absent ones are zero at revision 0.
// Each look-up is served by the _id index (see docstore.FindByIDs).
func (r *Runner[V]) load(ctx context.Context, collection string, ids []string) (map[string]Document[V], error) {
	docs, err := docstore.FindByIDs[Document[V]](ctx, r.store.Database(), collection, ids, nil)
	if err != nil {
		return nil, fmt.Errorf("load documents: %w", err)
	}
	out := make(map[string]Document[V], len(docs))
	for _, d := range docs {
		out[d.ID] = d
	}
	return out, nil
}
