package quota

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"
)

// maxInWindow is the most events in any half-open window of length w.
func maxInWindow(times []time.Time, w time.Duration) int {
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	best, j := 0, 0
	for i := range times {
		for times[i].Sub(times[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// run sends as fast as the pacers allow, with senders per pacer, for d.
func run(t *testing.T, d time.Duration, senders int, pacers ...*Pacer) map[*Pacer][]time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	out := map[*Pacer][]time.Time{}
	var wg sync.WaitGroup
	for _, p := range pacers {
		for range senders {
			wg.Go(func() {
				for {
					if _, err := p.Wait(ctx); err != nil {
						return
					}
					mu.Lock()
					out[p] = append(out[p], time.Now()) // when the send really starts
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return out
}

func newPacer(t *testing.T, rate float64, own ...int32) *Pacer {
	t.Helper()
	p, err := New(Config{Rate: rate, Partitions: 6})
	if err != nil {
		t.Fatal(err)
	}
	p.Assign(own)
	return p
}

// One member owning every partition uses the whole quota, never more in
// any one-second window.
func TestOneMemberUsesTheWholeQuota(t *testing.T) {
	const rate, d = 20, 3 * time.Second
	p := newPacer(t, rate, 0, 1, 2, 3, 4, 5)
	sends := run(t, d, 3, p)[p]
	worst, perSecond := maxInWindow(sends, time.Second), float64(len(sends))/d.Seconds()
	t.Logf("%d sends in %v: %.1f/s of %d/s (%.0f%%), at most %d in any 1 s window", len(sends), d, perSecond, rate, 100*perSecond/rate, worst)
	if worst > rate || perSecond < 0.95*rate*0.97 { // the run's partial first and last slots cost a little
		t.Fatalf("%d in one second, %.1f/s: want at most %d and at least 95%% of it", worst, perSecond, rate)
	}
}

// Two members splitting the partitions 4/2 send in proportion, and the
// group together stays within the quota.
func TestMembersShareByPartitionsAndSumToTheQuota(t *testing.T) {
	const rate, d = 12, 3 * time.Second
	a, b := newPacer(t, rate, 0, 1, 2, 3), newPacer(t, rate, 4, 5)
	got := run(t, d, 2, a, b)
	all := append(append([]time.Time{}, got[a]...), got[b]...)
	worst := maxInWindow(all, time.Second)
	t.Logf("member a (4 partitions) %d sends, b (2) %d, group at most %d in any 1 s window", len(got[a]), len(got[b]), worst)
	if worst > rate {
		t.Fatalf("group sent %d in one second, quota %d", worst, rate)
	}
	if ratio := float64(len(got[a])) / float64(len(got[b])); ratio < 1.6 || ratio > 2.4 {
		t.Fatalf("shares %d:%d, want about 2:1", len(got[a]), len(got[b]))
	}
}

// A member owning nothing sends nothing until it is assigned.
func TestNoPartitionNoSend(t *testing.T) {
	p := newPacer(t, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := p.Wait(ctx); err == nil {
		t.Fatal("a member without partitions got a slot")
	}
	done := make(chan error, 1)
	go func() { _, err := p.Wait(context.Background()); done <- err }()
	p.Assign([]int32{3})
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no slot after the assignment")
	}
	if p.Release([]int32{3}); len(p.Owned()) != 0 {
		t.Fatalf("owned %v after release", p.Owned())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{{Rate: 0, Partitions: 6}, {Rate: 5, Partitions: 0}, {Rate: 5, Partitions: 6, Margin: 0.01, Tolerance: 20 * time.Millisecond}} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}
