// Package replay rebuilds a projection's read model from the event log
// while the shop keeps serving, and verifies a read model against the log.
//
// Rebuild projects every record of the projection's topics, from the start
// of the log, into a new collection with the projection's own runner (the
// same fold, batching and version guards as the live projector). When the
// new collection is within SwitchLag records of the live head it switches
// the projection's alias to it in one document write: readers and the live
// runner move to the new collection together, and never see a half-built
// one. It then catches up once more to the head as it stands after the
// switch (records the live runner may have written to the old collection
// just before it saw the switch), waits DropAfter for readers holding the
// old alias, and drops the old collection.
//
// Verify rebuilds into a scratch collection and compares it, document by
// document, with the live one (invariant I4: the read model equals a
// replay of the log), then drops the scratch collection.
//
// Neither uses a consumer group: they read the partitions directly and
// commit nothing, so the live projector's checkpoints are untouched.
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/docstore"
	"shopstream/internal/platform/eventlog"
	"shopstream/projectors/runner"
)

// Config is what a rebuild or a verification needs.
type Config struct {
	Kafka  []kgo.Opt // seed brokers and client options (no consumer options)
	Serde  *eventlog.Serde
	Store  *docstore.Store
	Logger *slog.Logger
	// Progress receives a progress bar (events done, events/s, lag left,
	// ETA); nil shows none.
	Progress io.Writer
	// OnProgress, when set, is called with where the run stands: after
	// every fetch while it folds, and at each change of phase. It must
	// return quickly (it runs on the rebuild's goroutine).
	OnProgress func(Progress)
	// SwitchLag is how far behind the head (in records) the new collection
	// may be when the switch starts; 0 means DefaultSwitchLag.
	SwitchLag int64
	// DropAfter is how long the old collection is kept after the switch
	// for readers still holding the old alias; 0 means DefaultDropAfter.
	DropAfter time.Duration
	// SwitchTimeout bounds the switch, during which live runners hold
	// their writes; past it the switch is abandoned. 0 means
	// DefaultSwitchTimeout.
	SwitchTimeout time.Duration
}

// Defaults of Config.
const (
	DefaultSwitchLag     = 500
	DefaultDropAfter     = 3 * runner.ReaderAliasTTL
	DefaultSwitchTimeout = 30 * time.Second
)

// Phases of a rebuild or a verification, as [Progress] names them.
const (
	PhaseRebuilding = "rebuilding" // folding the log into the new collection
	PhaseSwitching  = "switching"  // readers' alias moving; live runners hold their writes
	PhaseSwitched   = "switched"   // readers use the new collection; the old one is dropped after DropAfter
	PhaseComparing  = "comparing"  // verify: comparing the scratch collection with the live one
	PhaseDone       = "done"
)

// Progress is where a rebuild or a verification stands.
type Progress struct {
	Projection string
	Phase      string
	Events     int64         // records folded so far
	Lag        int64         // records left to the head, as last measured
	Elapsed    time.Duration // since the start
}

// Report says what a rebuild did.
type Report struct {
	Projection string
	From, To   string        // the collection readers used before, and after
	Events     int64         // records folded
	Poison     int64         // poison records skipped
	Documents  int64         // documents in the new collection
	Elapsed    time.Duration // from the start to the switch (the old collection's grace period aside)
}

// Rate is the rebuild's throughput in events per second.
func (r Report) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Events) / r.Elapsed.Seconds()
}

// Rebuild rebuilds p's read model into a new collection and switches
// readers to it; see the package documentation for the steps and their
// guarantees. If it fails or ctx ends before the switch, the new
// collection is dropped and readers never saw it.
func Rebuild[V any](ctx context.Context, p runner.Projection[V], cfg Config) (Report, error) {
	began := time.Now()
	cfg = cfg.withDefaults()
	aliases := runner.NewAliases(cfg.Store.Database())
	base := p.Collection()
	old, err := aliases.Resolve(ctx, base)
	if err != nil {
		return Report{}, err
	}
	target := fmt.Sprintf("%s_r%d", base, time.Now().UnixMilli())
	b, err := newBuilder(ctx, p, cfg, target)
	if err != nil {
		return Report{}, err
	}
	defer b.close()
	switched := false
	defer func() {
		if !switched {
			_ = cfg.Store.Collection(target).Drop(context.WithoutCancel(ctx))
		}
	}()
	if err := b.toHead(ctx, cfg.SwitchLag); err != nil {
		return Report{}, err
	}
	b.phase = PhaseSwitching
	b.show(0)
	// Live runners hold their writes from here until the commit, so that
	// each document's events stay in order (see runner.Aliases).
	if err := aliases.BeginSwitch(ctx, base, old, target, time.Now().Add(cfg.SwitchTimeout)); err != nil {
		return Report{}, err
	}
	// Every record a live runner has folded lies below the head as it is
	// now; from there on the runners go on in order themselves, so the
	// rebuild does not chase a head that moves.
	ends, err := b.heads(ctx)
	if err == nil {
		err = b.catchUp(ctx, ends)
	}
	if err != nil {
		_ = aliases.AbortSwitch(context.WithoutCancel(ctx), base, target)
		return Report{}, fmt.Errorf("before the switch to %s: %w", target, err)
	}
	if err := aliases.CommitSwitch(ctx, base, target); err != nil {
		_ = aliases.AbortSwitch(context.WithoutCancel(ctx), base, target)
		return Report{}, err
	}
	switched = true
	elapsed := time.Since(began)
	b.phase = PhaseSwitched
	b.show(0)
	b.finish()
	cfg.Logger.Info("readers switched; the old collection is dropped after a grace period", "projection", p.Name, "from", old, "to", target, "drop_after", cfg.DropAfter)
	select {
	case <-ctx.Done():
		return Report{}, fmt.Errorf("switched to %s, but %s was not dropped: %w", target, old, ctx.Err())
	case <-time.After(cfg.DropAfter):
	}
	if err := cfg.Store.Collection(old).Drop(ctx); err != nil {
		return Report{}, fmt.Errorf("switched to %s, but dropping %s: %w", target, old, err)
	}
	docs, err := cfg.Store.Collection(target).EstimatedDocumentCount(ctx)
	if err != nil {
		return Report{}, err
	}
	b.phase = PhaseDone
	b.show(0)
	return Report{Projection: p.Name, From: old, To: target, Events: b.events, Poison: b.r.Poisoned(), Documents: docs, Elapsed: elapsed}, nil
}

func (c Config) withDefaults() Config {
	if c.SwitchLag <= 0 {
		c.SwitchLag = DefaultSwitchLag
	}
	if c.DropAfter <= 0 {
		c.DropAfter = DefaultDropAfter
	}
	if c.SwitchTimeout <= 0 {
		c.SwitchTimeout = DefaultSwitchTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// builder folds a projection's topics, from the start of the log, into
// one collection.
type builder[V any] struct {
	r      *runner.Runner[V]
	cl     *kgo.Client
	adm    *kadm.Client
	topics []string
	next   map[string]map[int32]int64 // next offset to fold, per partition
	events int64
	bar    *progressbar.ProgressBar
	total  int64
	// what OnProgress is told
	name     string
	phase    string
	began    time.Time
	progress func(Progress)
}

func newBuilder[V any](ctx context.Context, p runner.Projection[V], cfg Config, coll string) (*builder[V], error) {
	// Fetches of at most 128 KiB per partition (franz-go's default is
	// 1 MiB): the first fetch of a log of tens of thousands of records
	// would bring it all at once, and the fold would wait for all of it.
	// Smaller fetches let the fold of one overlap the next (see catchUp).
	// A partition that has reached the head is not waited on for long.
	cl, err := kgo.NewClient(append(cfg.Kafka,
		kgo.ConsumeTopics(p.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(10*time.Millisecond),
		kgo.FetchMaxPartitionBytes(128<<10),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	b := &builder[V]{r: runner.New(p, cfg.Serde, cfg.Store, cfg.Logger).Into(coll), cl: cl, adm: kadm.NewClient(cl),
		topics: p.Topics, next: map[string]map[int32]int64{}, name: p.Name, phase: PhaseRebuilding, began: time.Now(), progress: cfg.OnProgress}
	starts, err := b.adm.ListStartOffsets(ctx, p.Topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("start offsets of %v: %w", p.Topics, err)
	}
	starts.Each(func(o kadm.ListedOffset) {
		if b.next[o.Topic] == nil {
			b.next[o.Topic] = map[int32]int64{}
		}
		b.next[o.Topic][o.Partition] = o.Offset
	})
	// The collection exists, with its indexes, even for an empty log.
	if err := cfg.Store.Database().CreateCollection(ctx, coll); err != nil {
		cl.Close()
		return nil, fmt.Errorf("create %s: %w", coll, err)
	}
	if _, err := b.r.Target(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	if cfg.Progress != nil {
		b.bar = progressbar.NewOptions64(1,
			progressbar.OptionSetWriter(cfg.Progress),
			progressbar.OptionSetDescription("replay "+p.Name),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("events"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(cfg.Progress) }),
		)
	}
	return b, nil
}

func (b *builder[V]) close() { b.cl.Close() }

// heads lists the end offsets of the projection's topics.
func (b *builder[V]) heads(ctx context.Context) (kadm.ListedOffsets, error) {
	ends, err := b.adm.ListEndOffsets(ctx, b.topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %v: %w", b.topics, err)
	}
	return ends, nil
}

// lag is how many records lie between what was folded and ends.
func (b *builder[V]) lag(ends kadm.ListedOffsets) int64 {
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if d := o.Offset - b.next[o.Topic][o.Partition]; d > 0 {
			n += d
		}
	})
	return n
}

// toHead folds until the collection is at most within records of the
// head, measuring the head again after each pass.
func (b *builder[V]) toHead(ctx context.Context, within int64) error {
	for {
		ends, err := b.heads(ctx)
		if err != nil {
			return err
		}
		lag := b.lag(ends)
		if lag <= within {
			return nil
		}
		if err := b.catchUp(ctx, ends); err != nil {
			return err
		}
	}
}

// FoldBatch is how many records a rebuild hands its runner at once. The
// rebuild's runner holds the documents it folds and writes them at the end
// of each catch-up (see runner.Runner.Into): most documents are written
// once, as inserts, whatever the number of batches, so batches are small
// enough for the fold of one to overlap the fetch of the next.
const FoldBatch = 10_000

// catchUp folds records until every partition has reached ends, and writes
// the documents folded. The fetches and the fold run side by side: one
// goroutine folds batches of up to FoldBatch records, in the order they
// were fetched, while this one fetches the next (at most two batches
// wait between them).
func (b *builder[V]) catchUp(ctx context.Context, ends kadm.ListedOffsets) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	batches := make(chan []*kgo.Record, 2)
	folded := make(chan error, 1)
	go func() {
		var err error
		for recs := range batches {
			if err == nil {
				if err = b.r.ApplyWithRetry(ctx, recs); err != nil {
					cancel(err)
				}
			}
		}
		folded <- err
	}()
	err := b.fetch(ctx, ends, batches)
	close(batches)
	if ferr := <-folded; ferr != nil {
		return ferr
	}
	if err != nil {
		return err
	}
	if err := b.r.Flush(ctx); err != nil {
		return err
	}
	b.show(0)
	return nil
}

// fetch polls records until every partition has reached ends, and sends
// them to batches in batches of up to FoldBatch records.
func (b *builder[V]) fetch(ctx context.Context, ends kadm.ListedOffsets, batches chan<- []*kgo.Record) error {
	var pending []*kgo.Record
	send := func() error {
		select {
		case batches <- pending:
			pending = nil
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	for lag := b.lag(ends); lag > 0; lag = b.lag(ends) {
		b.show(lag)
		fs := b.cl.PollRecords(ctx, FoldBatch)
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		var fetchErr error
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, kgo.ErrClientClosed) {
				fetchErr = err
			}
		})
		if fetchErr != nil {
			return fetchErr
		}
		recs := fs.Records()
		for _, rec := range recs {
			b.next[rec.Topic][rec.Partition] = rec.Offset + 1
		}
		b.events += int64(len(recs))
		if pending = append(pending, recs...); len(pending) >= FoldBatch {
			if err := send(); err != nil {
				return err
			}
		}
	}
	if len(pending) > 0 {
		return send()
	}
	return nil
}

// show moves the progress bar (events done out of events done plus lag)
// and tells OnProgress.
func (b *builder[V]) show(lag int64) {
	if b.progress != nil {
		b.progress(Progress{Projection: b.name, Phase: b.phase, Events: b.events, Lag: lag, Elapsed: time.Since(b.began)})
	}
	if b.bar == nil {
		return
	}
	if total := b.events + lag; total != b.total {
		b.total = total
		b.bar.ChangeMax64(max(total, 1))
	}
	b.bar.Describe(fmt.Sprintf("replay %s, lag %d", b.r.Projection().Name, lag))
	_ = b.bar.Set64(b.events)
}

func (b *builder[V]) finish() {
	if b.bar != nil {
		_ = b.bar.Finish()
	}
}
