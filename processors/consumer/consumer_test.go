package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/eventlog"
	"shopstream/internal/testinfra/eventlogtest"
	"shopstream/internal/testinfra/kafkatest"
	"shopstream/internal/testinfra/testenv"
	"shopstream/processors/consumer"
	"shopstream/schemas"
)

// Every test reads and writes ReviewAdded events on the reviews topic, with
// a producer that picks partitions itself.
const topic = schemas.TopicReviews

type fixture struct {
	t       *testing.T
	brokers []string
	serde   *eventlog.Serde
	prod    *kgo.Client
	adm     *kadm.Client
	run     string // unique to this run: prefixes event ids and the group
	group   string
}

func setup(t *testing.T, brokers []string) *fixture {
	t.Helper()
	serde, _ := eventlogtest.Serde(t)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	f := &fixture{
		t: t, brokers: brokers, serde: serde,
		prod:  kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner())),
		adm:   kadm.NewClient(kafkatest.Client(t, brokers)),
		run:   run,
		group: "shop.processor.test." + strings.NewReplacer("/", ".", " ", "_").Replace(t.Name()) + "." + run,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eventlog.EnsureTopics(ctx, f.adm, -1); err != nil {
		t.Fatal(err)
	}
	// Real Kafka keeps earlier runs' records: the new group starts at the
	// end offsets, as if it had handled everything before this test.
	ends, err := f.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.adm.CommitAllOffsets(ctx, f.group, ends.Offsets()); err != nil {
		t.Fatal(err)
	}
	return f
}

// record is a ReviewAdded for partition p whose event id is the run's
// prefix and name.
func (f *fixture) record(p int32, name string) *kgo.Record {
	f.t.Helper()
	ev := schemas.ReviewAdded{ReviewID: name, ProductID: "prod-" + name, CustomerID: "c", Rating: 4}
	value, err := f.serde.Encode(context.Background(), topic, ev)
	if err != nil {
		f.t.Fatal(err)
	}
	m := eventlog.Metadata{
		EventID: f.run + "/" + name, Type: ev.EventType(), Source: "shopstream/test",
		AggregateID: ev.ProductID, AggregateVersion: 1, OccurredAt: time.Now(),
	}
	return &kgo.Record{Topic: topic, Partition: p, Key: []byte(ev.ProductID), Value: value, Headers: m.Headers()}
}

// produce writes recs in order and returns them with their offsets.
func (f *fixture) produce(recs ...*kgo.Record) []*kgo.Record {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		f.t.Fatal(err)
	}
	return recs
}

// name is the test name of an event of this run, "" for anyone else's.
func (f *fixture) name(env eventlog.Envelope) string {
	n, ok := strings.CutPrefix(env.Meta.EventID, f.run+"/")
	if !ok {
		return ""
	}
	return n
}

func (f *fixture) config(h consumer.Handler) consumer.Config {
	return consumer.Config{
		Group: f.group, Topics: []string{topic}, Handler: h, Serde: f.serde,
		Logger:     slog.New(slog.NewTextHandler(f.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
	}
}

type member struct {
	cl   *kgo.Client
	stop func() time.Duration // cancels Run, checks it returns nil; how long it took
}

// start runs a consumer of cfg on a new client until stop (or the end of
// the test).
func (f *fixture) start(cfg consumer.Config) *member {
	f.t.Helper()
	c := consumer.New(cfg)
	cl := kafkatest.Client(f.t, f.brokers, append(c.ClientOpts(), kgo.HeartbeatInterval(300*time.Millisecond))...)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, cl) }()
	var once sync.Once
	var took time.Duration
	stop := func() time.Duration {
		once.Do(func() {
			begin := time.Now()
			cancel()
			select {
			case err := <-errc:
				took = time.Since(begin)
				if err != nil {
					f.t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				f.t.Errorf("Run did not return 20s after its context ended")
			}
			cl.Close()
		})
		return took
	}
	f.t.Cleanup(func() { stop() })
	return &member{cl: cl, stop: stop}
}

// committed is the group's committed offset of each partition of topic.
func (f *fixture) committed() map[int32]int64 {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offs, err := f.adm.FetchOffsetsForTopics(ctx, f.group, topic)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) { out[o.Partition] = o.At })
	return out
}

// handling is one handler call on a record of this run.
type handling struct {
	member     string
	name       string
	partition  int32
	offset     int64
	start, end time.Time
}

// journal records handler calls.
type journal struct {
	mu   sync.Mutex
	list []handling
}

func (j *journal) add(h handling) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.list = append(j.list, h)
}

func (j *journal) all() []handling {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.list)
}

// names are the names handled, in call order.
func (j *journal) names() []string {
	var out []string
	for _, h := range j.all() {
		out = append(out, h.name)
	}
	return out
}

func (j *journal) has(names ...string) bool {
	got := j.names()
	for _, n := range names {
		if !slices.Contains(got, n) {
			return false
		}
	}
	return true
}

func paused(cl *kgo.Client, p int32) bool {
	return slices.Contains(cl.PauseFetchPartitions(nil)[topic], p)
}

// offsetsOf lists the offsets handled on partition p, in call order.
func offsetsOf(hs []handling, p int32) []int64 {
	var out []int64
	for _, h := range hs {
		if h.partition == p {
			out = append(out, h.offset)
		}
	}
	return out
}

func offsets(recs []*kgo.Record) []int64 {
	var out []int64
	for _, r := range recs {
		out = append(out, r.Offset)
	}
	return out
}

func TestPermanentMarksPoison(t *testing.T) {
	cause := errors.New("rating out of range")
	err := consumer.Permanent(cause)
	if !errors.Is(err, eventlog.ErrPoison) || !errors.Is(err, cause) {
		t.Fatalf("Permanent(%v) = %v: want both ErrPoison and the cause", cause, err)
	}
	if consumer.Permanent(nil) != nil {
		t.Fatal("Permanent(nil) must be nil")
	}
	if again := consumer.Permanent(err); again != err {
		t.Fatalf("Permanent of poison rewrapped it: %v", again)
	}
}

// Each partition's records are handled once each, in offset order, and
// partitions run in parallel: the first record handled blocks its
// partition until every other partition is done, which a runner that
// serialises partitions never gets to.
func TestPartitionsInOrderAndInParallel(t *testing.T) {
	kafkatest.ForEachBroker(t, func(t *testing.T, brokers []string) {
		f := setup(t, brokers)
		const perPartition = 20
		want := map[int32][]int64{}
		var recs []*kgo.Record
		for p := range int32(schemas.DefaultPartitions) {
			for i := range perPartition {
				recs = append(recs, f.record(p, fmt.Sprintf("p%d-%d", p, i)))
			}
		}
		for _, r := range f.produce(recs...) {
			want[r.Partition] = append(want[r.Partition], r.Offset)
		}

		var j journal
		var blocker atomic.Int32
		blocker.Store(-1)
		othersDone := make(chan struct{})
		var closeOnce sync.Once
		f.start(f.config(func(ctx context.Context, env eventlog.Envelope) error {
			if f.name(env) == "" {
				return nil
			}
			if blocker.CompareAndSwap(-1, env.Partition) {
				select {
				case <-othersDone:
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(20 * time.Second):
					t.Errorf("partition %d blocked 20s: the other partitions did not proceed without it", env.Partition)
				}
			}
			if got := env.Event.(schemas.ReviewAdded).ReviewID; got != f.name(env) {
				t.Errorf("offset %d decoded as review %q, want %q", env.Offset, got, f.name(env))
			}
			j.add(handling{name: f.name(env), partition: env.Partition, offset: env.Offset})
			hs := j.all()
			done := 0
			for _, h := range hs {
				if h.partition != blocker.Load() {
					done++
				}
			}
			if done == perPartition*(schemas.DefaultPartitions-1) {
				closeOnce.Do(func() { close(othersDone) })
			}
			return nil
		}))
		testenv.WaitFor(t, 30*time.Second, "every record", func() bool { return len(j.all()) >= len(recs) })
		hs := j.all()
		for p, offs := range want {
			if got := offsetsOf(hs, p); !reflect.DeepEqual(got, offs) {
				t.Errorf("partition %d handled offsets %v, want %v", p, got, offs)
			}
		}
	})
}

// A member that stops keeps nothing it has not handled and loses nothing
// it has: the next member of the group starts right after the last handled
// record of each partition. A record that keeps failing is not committed,
// holds back its partition only, and does not delay the stop.
func TestRestartResumesAfterLastHandledRecord(t *testing.T) {
	kafkatest.ForEachBroker(t, func(t *testing.T, brokers []string) {
		f := setup(t, brokers)
		const stuck = "a-p2-2"
		var batch1 []*kgo.Record
		var stuckRec *kgo.Record
		var wantA []string // all but the stuck record and those after it
		for p := range int32(schemas.DefaultPartitions) {
			for i := range 5 {
				n := fmt.Sprintf("a-p%d-%d", p, i)
				batch1 = append(batch1, f.record(p, n))
				if n == stuck {
					stuckRec = batch1[len(batch1)-1]
				}
				if p != 2 || i < 2 {
					wantA = append(wantA, n)
				}
			}
		}
		f.produce(batch1...)

		var a journal
		var stuckAttempts atomic.Int32
		ma := f.start(f.config(func(ctx context.Context, env eventlog.Envelope) error {
			n := f.name(env)
			if n == stuck {
				stuckAttempts.Add(1)
				return errors.New("inventory service unavailable")
			}
			if n != "" {
				a.add(handling{name: n, partition: env.Partition, offset: env.Offset})
			}
			return nil
		}))
		testenv.WaitFor(t, 30*time.Second, "member A to handle all it can", func() bool {
			return a.has(wantA...) && stuckAttempts.Load() >= 3
		})
		// Committed while running, not only at the stop: a crash now
		// would resume at the same place.
		// (Real Kafka may hold other tests' records after ours.)
		testenv.WaitFor(t, 10*time.Second, "the handled records to be committed", func() bool {
			got := f.committed()
			for _, r := range batch1 {
				if r.Partition != 2 && got[r.Partition] < r.Offset+1 {
					return false
				}
			}
			return got[2] == stuckRec.Offset
		})
		if got := f.committed()[2]; got != stuckRec.Offset {
			t.Errorf("partition 2 committed at %d, past the stuck record at %d", got, stuckRec.Offset)
		}
		if took := ma.stop(); took > 5*time.Second {
			t.Errorf("stopping a member that is retrying took %v", took)
		}
		if got := a.names(); len(got) != len(wantA) {
			t.Errorf("member A handled %v, want exactly %v (nothing after the stuck record on its partition)", got, wantA)
		}

		wantB := []string{stuck, "a-p2-3", "a-p2-4"}
		var batch2 []*kgo.Record
		for p := range int32(schemas.DefaultPartitions) {
			for i := range 2 {
				n := fmt.Sprintf("b-p%d-%d", p, i)
				batch2 = append(batch2, f.record(p, n))
				wantB = append(wantB, n)
			}
		}
		f.produce(batch2...)

		var b journal
		f.start(f.config(func(ctx context.Context, env eventlog.Envelope) error {
			if n := f.name(env); n != "" {
				b.add(handling{name: n, partition: env.Partition, offset: env.Offset})
			}
			return nil
		}))
		testenv.WaitFor(t, 30*time.Second, "member B to handle the rest", func() bool { return b.has(wantB...) })
		// A partition's records come in order: any batch-1 record
		// redelivered to B came before the batch-2 records just waited for.
		got := b.names()
		slices.Sort(got)
		slices.Sort(wantB)
		if !reflect.DeepEqual(got, wantB) {
			t.Errorf("member B handled %v, want exactly %v", got, wantB)
		}
	})
}

// A transient error retries the record with growing, jittered waits while
// its partition's fetching is paused; later records of the partition wait,
// other partitions do not; the pause is lifted after the success.
func TestTransientErrorsAreRetriedWithBackoff(t *testing.T) {
	kafkatest.ForEachBroker(t, func(t *testing.T, brokers []string) {
		f := setup(t, brokers)
		f.produce(f.record(1, "r0"), f.record(1, "r1"), f.record(1, "r2"), f.record(4, "s0"), f.record(4, "s1"))
		const failures = 4

		var j journal
		var mu sync.Mutex
		var attempts []time.Time
		var pausedDuringRetry []bool
		var cl atomic.Pointer[kgo.Client]
		cfg := f.config(func(ctx context.Context, env eventlog.Envelope) error {
			n := f.name(env)
			if n == "r1" {
				mu.Lock()
				attempts = append(attempts, time.Now())
				if len(attempts) > 1 {
					pausedDuringRetry = append(pausedDuringRetry, paused(cl.Load(), 1))
				}
				fail := len(attempts) <= failures
				mu.Unlock()
				if fail {
					return errors.New("payment provider timed out")
				}
			}
			if n != "" {
				j.add(handling{name: n, partition: env.Partition, offset: env.Offset, end: time.Now()})
			}
			return nil
		})
		m := f.start(cfg)
		cl.Store(m.cl)
		testenv.WaitFor(t, 30*time.Second, "every record", func() bool { return len(j.all()) >= 5 })

		hs := j.all()
		var order []string
		var r1Done, s1Done time.Time
		for _, h := range hs {
			if h.partition == 1 {
				order = append(order, h.name)
			}
			switch h.name {
			case "r1":
				r1Done = h.end
			case "s1":
				s1Done = h.end
			}
		}
		if !reflect.DeepEqual(order, []string{"r0", "r1", "r2"}) {
			t.Errorf("partition 1 handled %v, want r0 r1 r2 once each", order)
		}
		if !s1Done.Before(r1Done) {
			t.Errorf("partition 4 finished at %v, after the retried record of partition 1 (%v): it was held up", s1Done, r1Done)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(attempts) != failures+1 {
			t.Fatalf("%d attempts, want %d", len(attempts), failures+1)
		}
		for i := 1; i < len(attempts); i++ {
			gap := attempts[i].Sub(attempts[i-1])
			floor := cfg.MinBackoff << (i - 1) / 2 // jitter keeps at least half of the step
			if gap < floor {
				t.Errorf("retry %d came %v after the previous attempt, want at least %v", i, gap, floor)
			}
		}
		for i, p := range pausedDuringRetry {
			if !p {
				t.Errorf("retry %d: partition 1 was not paused", i+1)
			}
		}
		testenv.WaitFor(t, 5*time.Second, "partition 1 to resume", func() bool { return !paused(m.cl, 1) })
	})
}

// A worker that falls behind pauses its partition once MaxBuffered records
// wait for it, so the backlog stays in Kafka; records produced meanwhile
// are fetched after the pause lifts, none lost, in order.
func TestFullQueuePausesFetchingAndLosesNothing(t *testing.T) {
	brokers := kafkatest.Embedded(t)
	kafkatest.EnsureTopics(t, brokers)
	f := setup(t, brokers)
	var recs []*kgo.Record
	for i := range 40 {
		recs = append(recs, f.record(0, fmt.Sprintf("x%d", i)))
	}
	f.produce(recs...)

	var j journal
	release := make(chan struct{})
	cfg := f.config(func(ctx context.Context, env eventlog.Envelope) error {
		if f.name(env) == "x0" {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		j.add(handling{name: f.name(env), partition: env.Partition, offset: env.Offset})
		return nil
	})
	cfg.MaxBuffered = 4
	m := f.start(cfg)
	testenv.WaitFor(t, 20*time.Second, "partition 0 to pause", func() bool { return paused(m.cl, 0) })
	var more []*kgo.Record
	for i := range 40 {
		more = append(more, f.record(0, fmt.Sprintf("y%d", i)))
	}
	f.produce(more...)
	close(release)
	all := append(recs, more...)
	testenv.WaitFor(t, 20*time.Second, "every record", func() bool { return len(j.all()) >= len(all) })
	if got := offsetsOf(j.all(), 0); !reflect.DeepEqual(got, offsets(all)) {
		t.Errorf("handled offsets %v, want %v", got, offsets(all))
	}
	testenv.WaitFor(t, 5*time.Second, "partition 0 to resume", func() bool { return !paused(m.cl, 0) })
}
