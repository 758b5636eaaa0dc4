// Package consumer is the consumer-group runner the processors share (order
// saga, inventory, payments, email sender): it reads the processor's topics
// in a consumer group, decodes every record with the event-log serde and
// hands it to the processor's Handler, one goroutine per assigned
// partition, after franz-go's "goroutine per partition" pattern.
//
// Guarantees:
//
//   - Order: the records of a partition are handled one at a time, in offset
//     order; partitions proceed in parallel, so a slow or failing partition
//     holds up no other.
//   - At least once: a partition's offset is committed only past records
//     whose handling is finished (the handler returned nil, or the record
//     was dead-lettered), and every record before them in that partition.
//     A restart, a rebalance or a crash resumes after the last committed
//     record, so nothing handled is lost and a record may be handled again:
//     handlers must be idempotent.
//   - Transient errors (any handler error not marked Permanent, a registry
//     outage, a failed dead-letter write) are retried with exponential
//     backoff and jitter until they succeed or the partition is released;
//     no record is ever skipped because of one. While a partition retries,
//     or while more than Config.MaxBuffered of its records wait in memory,
//     fetching it is paused, so its backlog waits in Kafka.
//   - Poison (a record the serde reports as eventlog.ErrPoison, or a
//     handler error marked with Permanent) is written synchronously to the
//     topic's dead-letter topic (see eventlog.DeadLetter) before its offset
//     is committed; then the partition goes on.
//   - Rebalances: a revoked partition's worker finishes the record it is
//     handling (the call is not canceled; a pending retry is abandoned), its
//     progress is committed, then the partition is released. A lost
//     partition (the member was fenced) is released without a commit.
//   - Tracing: each handler call (each attempt) runs under a consumer span
//     whose parent is the record's traceparent header (Config.Tracing).
//   - Stop: when Run's context ends (handlers see it end too), every worker
//     stops after its current call, the progress is committed and Run
//     returns.
//
// Commits are batched: finished records are committed as soon as the
// previous commit is done and CommitInterval has passed since it, and
// always on revocation and stop. A crash redelivers at most the records
// finished since the last commit and those in progress.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/trace"

	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/kafkagroup"
	"shopstream/internal/platform/tracing"
)

// Handler applies one event's effect; it returns nil once the effect is
// durable. It must be idempotent: the runner delivers at least once. It
// runs with Run's context and should bound its own time: a rebalance waits
// for the call in flight. Errors are retried unless marked with Permanent.
type Handler func(ctx context.Context, env eventlog.Envelope) error

// Permanent marks a handler error as poison: no retry can fix it, so the
// record goes to the dead-letter topic instead of being retried. The
// result wraps both err and eventlog.ErrPoison (a handler error that
// already wraps ErrPoison is poison as it is). Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil || errors.Is(err, eventlog.ErrPoison) {
		return err
	}
	return fmt.Errorf("%w: %w", eventlog.ErrPoison, err)
}

// Config configures a Consumer. Group, Topics, Handler and Serde are
// required.
type Config struct {
	Group   string   // consumer group, e.g. "shop.processor.inventory.v1"
	Topics  []string // topics consumed; poison goes to each one's dead-letter topic
	Handler Handler
	// Permanent are the handler errors no retry can fix: one that wraps
	// any of them (errors.Is) is poison, sent to the dead-letter topic at
	// once, as if the handler had marked it with the function Permanent.
	// Every processor declares its permanent errors here.
	Permanent []error
	Serde     *eventlog.Serde
	Logger    *slog.Logger // default slog.Default()

	// Retry backoff of transient errors: the n-th retry of a record waits
	// a random time between half and all of min(MinBackoff·2ⁿ, MaxBackoff).
	MinBackoff, MaxBackoff time.Duration // default 50ms, 5s
	// MaxBuffered is how many fetched records of a partition may wait for
	// its worker before fetching the partition pauses; it resumes once
	// half of them are handled. Default 256.
	MaxBuffered int
	// OnAssigned, if set, is told the partitions the member gains, and
	// OnReleased those it gives up, once their workers have stopped (so
	// no handler runs for them any more). For resources shared by partition
	// ownership, such as a group-wide quota.
	OnAssigned, OnReleased func(partitions map[string][]int32)
	// CommitInterval is the least time between two periodic commits.
	// Default 500ms.
	CommitInterval time.Duration
	// Tracing traces the handling of each record: every handler call runs
	// under a consumer span, child of the record's traceparent, so the
	// events the handler writes (command.CausedBy) carry that span as
	// parent. Nil is a no-op provider: nothing is recorded, and the
	// handler's ctx carries the record's traceparent unchanged.
	Tracing trace.TracerProvider
}

// SessionTimeout is how long the group waits for a silent member before
// it hands its partitions to the others: the shop-wide
// kafkagroup.SessionTimeout.
const SessionTimeout = kafkagroup.SessionTimeout

const (
	maxPollRecords = 1000
	// opTimeout bounds one dead-letter write and one commit, so that a
	// revocation or a stop never waits on Kafka for longer.
	opTimeout = 10 * time.Second
)

// Consumer runs one processor's consumer group. Build its client with
// ClientOpts and run it once with Run.
type Consumer struct {
	cfg     Config
	log     *slog.Logger
	tracer  trace.Tracer
	running atomic.Bool

	mu      sync.Mutex
	workers map[tp]*worker

	// commitMu serialises every commit with its read of pending, so an
	// older snapshot is never committed after a newer one.
	commitMu sync.Mutex
	pendMu   sync.Mutex
	pending  map[tp]kgo.EpochOffset // finished, not yet committed: next offset to read
	kick     chan struct{}          // something new is pending
}

type tp struct {
	topic     string
	partition int32
}

// New returns a Consumer; it panics if a required field of cfg is missing.
func New(cfg Config) *Consumer {
	if cfg.Group == "" || len(cfg.Topics) == 0 || cfg.Handler == nil || cfg.Serde == nil {
		panic("consumer: Config needs Group, Topics, Handler and Serde")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 50 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = 256
	}
	if cfg.CommitInterval <= 0 {
		cfg.CommitInterval = 500 * time.Millisecond
	}
	return &Consumer{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "processor", "group", cfg.Group),
		tracer:  tracing.OrNoop(cfg.Tracing).Tracer("shopstream/processors/consumer"),
		workers: map[tp]*worker{},
		pending: map[tp]kgo.EpochOffset{},
		kick:    make(chan struct{}, 1),
	}
}

// ClientOpts are the client options the consumer needs: its group and
// topics, a new group starting at the beginning of the log, manual
// commits, rebalances blocked while polled records are being dispatched,
// and the revocation callbacks, with the shop's group settings
// (kafkagroup.Opts: a member that dies without leaving has its partitions
// handed on within about 10 s and a rebalance, not Kafka's default 45 s).
// The caller adds the seed brokers and anything else (logging, metrics).
// The client also produces the dead-letter records.
func (c *Consumer) ClientOpts() []kgo.Opt {
	return append([]kgo.Opt{
		kgo.ConsumerGroup(c.cfg.Group),
		kgo.ConsumeTopics(c.cfg.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
			c.log.Info("partitions assigned", "partitions", assigned)
			if c.cfg.OnAssigned != nil {
				c.cfg.OnAssigned(assigned)
			}
		}),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
	}, kafkagroup.Opts()...)
}

// Run consumes with cl (built with ClientOpts) until ctx ends, then stops
// the workers, commits their progress and returns nil, or the error of
// that final commit. It returns an error early if cl is closed under it.
// The caller closes cl after Run returns. Run may be called only once.
func (c *Consumer) Run(ctx context.Context, cl *kgo.Client) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("consumer: Run called twice")
	}
	loopCtx, stopCommits := context.WithCancel(ctx)
	commitsDone := make(chan struct{})
	go func() {
		defer close(commitsDone)
		c.commitLoop(loopCtx, cl)
	}()

	runErr := c.poll(ctx, cl)

	c.release(cl, c.take(everyPartition))
	stopCommits()
	<-commitsDone
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	if err := c.commit(fctx, cl, everyPartition, false); err != nil && runErr == nil {
		runErr = fmt.Errorf("consumer: final commit: %w", err)
	}
	return runErr
}

// poll dispatches fetched records to their partition's worker until ctx
// ends. Dispatching never blocks, so rebalances are held up only briefly.
func (c *Consumer) poll(ctx context.Context, cl *kgo.Client) error {
	for {
		fs := cl.PollRecords(ctx, maxPollRecords)
		if fs.IsClientClosed() {
			cl.AllowRebalance()
			return errors.New("consumer: client closed while running")
		}
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return nil
		}
		fs.EachError(func(topic string, p int32, err error) {
			c.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				c.worker(ctx, cl, tp{p.Topic, p.Partition}).push(p.Records)
			}
		})
		cl.AllowRebalance()
	}
}

// worker returns the partition's worker, starting it on the partition's
// first records. Only poll calls it, between a poll and AllowRebalance,
// so never concurrently with a revocation.
func (c *Consumer) worker(ctx context.Context, cl *kgo.Client, k tp) *worker {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.workers[k]
	if w == nil {
		w = newWorker(c, cl, k)
		c.workers[k] = w
		go w.run(ctx)
	}
	return w
}

// revoked stops the workers of the revoked partitions and commits their
// progress before the rebalance goes on.
func (c *Consumer) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	c.release(cl, c.take(in(revoked)))
	c.released(revoked)
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := c.commit(ctx, cl, in(revoked), false); err != nil {
		c.log.Warn("commit on revocation failed; the new owner will handle some records again", "err", err)
	}
}

// lost stops the workers of partitions the member no longer owns and
// forgets their progress: the group has moved on, a commit could only fail
// or rewind the new owner.
func (c *Consumer) lost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	c.release(cl, c.take(in(lost)))
	c.released(lost)
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	gone := in(lost)
	for k := range c.pending {
		if gone(k) {
			delete(c.pending, k)
		}
	}
}

func (c *Consumer) released(partitions map[string][]int32) {
	c.log.Info("partitions released", "partitions", partitions)
	if c.cfg.OnReleased != nil {
		c.cfg.OnReleased(partitions)
	}
}

func everyPartition(tp) bool { return true }

// in selects the partitions of tps.
func in(tps map[string][]int32) func(tp) bool {
	return func(k tp) bool { return slices.Contains(tps[k.topic], k.partition) }
}

// take removes the workers of the partitions selected from the consumer,
// so that whoever took a worker is the one to stop it.
func (c *Consumer) take(selected func(tp) bool) []*worker {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*worker
	for k, w := range c.workers {
		if selected(k) {
			out = append(out, w)
			delete(c.workers, k)
		}
	}
	return out
}

// release stops workers, waits until each has finished its current record,
// and lifts any pause it left on its partition (pauses outlive
// assignments).
func (c *Consumer) release(cl *kgo.Client, ws []*worker) {
	for _, w := range ws {
		close(w.stop)
	}
	resume := map[string][]int32{}
	for _, w := range ws {
		<-w.done
		resume[w.tp.topic] = append(resume[w.tp.topic], w.tp.partition)
	}
	if len(resume) > 0 {
		cl.ResumeFetchPartitions(resume)
	}
}

// finished records that rec's partition may be committed past rec.
func (c *Consumer) finished(k tp, rec *kgo.Record) {
	c.pendMu.Lock()
	c.pending[k] = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1}
	c.pendMu.Unlock()
	c.signal()
}

func (c *Consumer) signal() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// commitLoop commits pending progress whenever there is some, at most once
// per CommitInterval, until ctx ends.
func (c *Consumer) commitLoop(ctx context.Context, cl *kgo.Client) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		cctx, cancel := context.WithTimeout(ctx, opTimeout)
		if err := c.commit(cctx, cl, everyPartition, true); err != nil && ctx.Err() == nil {
			c.log.Warn("commit failed; retrying", "err", err)
			c.signal()
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.cfg.CommitInterval):
		}
	}
}

// commit commits the pending progress of the partitions selected. With
// keep, progress whose commit failed stays pending.
func (c *Consumer) commit(ctx context.Context, cl *kgo.Client, selected func(tp) bool, keep bool) error {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	c.pendMu.Lock()
	for k, o := range c.pending {
		if !selected(k) {
			continue
		}
		if offsets[k.topic] == nil {
			offsets[k.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[k.topic][k.partition] = o
		delete(c.pending, k)
	}
	c.pendMu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	err := commitOffsets(ctx, cl, offsets)
	if err != nil && keep {
		c.pendMu.Lock()
		for t, ps := range offsets {
			for p, o := range ps {
				if _, newer := c.pending[tp{t, p}]; !newer {
					c.pending[tp{t, p}] = o
				}
			}
		}
		c.pendMu.Unlock()
	}
	return err
}

// commitOffsets commits synchronously and reports the request's or any
// partition's error.
func commitOffsets(ctx context.Context, cl *kgo.Client, offsets map[string]map[int32]kgo.EpochOffset) error {
	var rerr error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			rerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					rerr = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
					return
				}
			}
		}
	})
	return rerr
}
