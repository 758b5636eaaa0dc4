package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/eventlog"
	"shopstream/internal/testinfra/kafkatest"
	"shopstream/internal/testinfra/testenv"
	"shopstream/processors/consumer"
	"shopstream/schemas"
)

// A second member joins while records flow: the group splits the
// partitions, every record is handled, once, and a partition handed over
// is never handled by both members at once nor out of order (the old
// owner finishes its record and commits before letting go). Once both
// stop, every partition is committed up to its end.
func TestTwoMembersSplitPartitionsAndHandleEveryRecord(t *testing.T) {
	kafkatest.ForEachBroker(t, func(t *testing.T, brokers []string) {
		f := setup(t, brokers)
		var j journal
		handler := func(member string) func(context.Context, eventlog.Envelope) error {
			return func(ctx context.Context, env eventlog.Envelope) error {
				n := f.name(env)
				if n == "" {
					return nil
				}
				start := time.Now()
				select {
				case <-time.After(25 * time.Millisecond): // slower than records come: always busy
				case <-ctx.Done():
					return ctx.Err()
				}
				j.add(handling{member: member, name: n, partition: env.Partition, offset: env.Offset, start: start, end: time.Now()})
				return nil
			}
		}
		count := func(member string, after time.Time) int {
			n := 0
			for _, h := range j.all() {
				if h.member == member && h.start.After(after) {
					n++
				}
			}
			return n
		}

		// One record per partition every 20ms until stopped.
		stopProducing := make(chan struct{})
		var produced []*kgo.Record
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopProducing:
					return
				case <-time.After(20 * time.Millisecond):
				}
				var batch []*kgo.Record
				for p := range int32(schemas.DefaultPartitions) {
					batch = append(batch, f.record(p, fmt.Sprintf("p%d-%d", p, i)))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := f.prod.ProduceSync(ctx, batch...).FirstErr()
				cancel()
				if err != nil {
					t.Errorf("produce: %v", err)
					return
				}
				produced = append(produced, batch...)
			}
		})

		// Only the commits of revocations and stops matter here.
		config := func(member string) consumer.Config {
			cfg := f.config(handler(member))
			cfg.CommitInterval = time.Minute
			return cfg
		}
		a := f.start(config("A"))
		testenv.WaitFor(t, 30*time.Second, "member A to start", func() bool { return count("A", time.Time{}) >= 30 })
		joined := time.Now()
		b := f.start(config("B"))
		testenv.WaitFor(t, 30*time.Second, "both members to handle records", func() bool {
			return count("B", joined) >= 30 && count("A", joined.Add(time.Second)) >= 30
		})
		close(stopProducing)
		wg.Wait()
		want := map[string]bool{}
		for _, r := range produced {
			want[string(r.Key)[len("prod-"):]] = true
		}
		testenv.WaitFor(t, 30*time.Second, "every record", func() bool {
			n := 0
			for _, h := range j.all() {
				if want[h.name] {
					n++
				}
			}
			return n >= len(want)
		})
		a.stop()
		b.stop()

		hs := j.all()
		seen := map[string]int{}
		for _, h := range hs {
			seen[h.name]++
		}
		for n, c := range seen {
			if c > 1 {
				t.Errorf("%s handled %d times", n, c)
			}
		}
		handedOver := 0
		for p := range int32(schemas.DefaultPartitions) {
			var ph []handling
			for _, h := range hs {
				if h.partition == p {
					ph = append(ph, h)
				}
			}
			slices.SortFunc(ph, func(x, y handling) int { return x.start.Compare(y.start) })
			for i := 1; i < len(ph); i++ {
				prev, cur := ph[i-1], ph[i]
				if cur.offset <= prev.offset || cur.start.Before(prev.end) {
					t.Errorf("partition %d: %s handled offset %d from %v, %s handled offset %d until %v",
						p, cur.member, cur.offset, cur.start, prev.member, prev.offset, prev.end)
				}
				if cur.member != prev.member {
					handedOver++
				}
			}
		}
		if handedOver == 0 {
			t.Error("no partition changed hands: the rebalance was not exercised")
		}
		committed := f.committed()
		for _, r := range produced {
			if committed[r.Partition] < r.Offset+1 {
				t.Errorf("partition %d committed at %d, want at least %d", r.Partition, committed[r.Partition], r.Offset+1)
			}
		}
	})
}
