package quota

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

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

// One member owning every partition never sends more than the quota in
// any one-second window of real time. (How much of the quota it uses is a
// property of the slot arithmetic, checked on a virtual clock by
// TestOneMemberIsHandedEverySlot: on a loaded machine slots pass unused
// while goroutines wait to be scheduled, which says nothing of the pacer.)
func TestOneMemberUsesTheWholeQuota(t *testing.T) {
	const rate, d = 20, 3 * time.Second
	p := newPacer(t, rate, 0, 1, 2, 3, 4, 5)
	sends := run(t, d, 3, p)[p]
	worst, perSecond := MostInWindow(sends, time.Second), float64(len(sends))/d.Seconds()
	t.Logf("%d sends in %v: %.1f/s of %d/s (%.0f%%), at most %d in any 1 s window", len(sends), d, perSecond, rate, 100*perSecond/rate, worst)
	if worst > rate {
		t.Fatalf("%d sends in one second: want at most %d", worst, rate)
	}
	if len(sends) == 0 {
		t.Fatal("no send in 3 s")
	}
}

// On a virtual clock that stands still, a member owning every partition is
// handed every slot in turn: over 10 s of slots that is Rate/(1+Margin)
// sends per second, 92.6% of the quota; owning 2 of 6 partitions it is handed
// exactly a third of them, each slot its own partition's.
func TestOneMemberIsHandedEverySlot(t *testing.T) {
	const rate, partitions = 20, 6
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		own  []int32
		want float64 // share of the slots
	}{
		{[]int32{0, 1, 2, 3, 4, 5}, 1},
		{[]int32{1, 4}, 1.0 / 3},
	} {
		p, err := New(Config{Rate: rate, Partitions: partitions, Now: func() time.Time { return t0 }})
		if err != nil {
			t.Fatal(err)
		}
		p.Assign(c.own)
		horizon := t0.Add(10 * time.Second)
		var starts []time.Time
		for {
			start, _, ok := p.reserve()
			if !ok {
				t.Fatal("no slot while owning partitions")
			}
			if !start.Before(horizon) {
				break
			}
			if s := start.UnixNano() / int64(p.Slot()); !slices.Contains(c.own, int32(s%partitions)) {
				t.Fatalf("slot %d belongs to partition %d, not owned (%v)", s, s%partitions, c.own)
			}
			starts = append(starts, start)
		}
		slots := float64(10*time.Second) / float64(p.Slot())
		got, want := float64(len(starts)), slots*c.want
		t.Logf("owning %v: handed %d of the %d slots in 10 s (%.1f/s)", c.own, len(starts), int(slots), got/10)
		if got < want-2 || got > want+1 {
			t.Errorf("owning %v: handed %v slots in 10 s, want %.1f", c.own, got, want)
		}
		if worst := MostInWindow(starts, time.Second); worst > rate {
			t.Errorf("owning %v: %d slots in one second, quota %d", c.own, worst, rate)
		}
	}
}

// Two members splitting the partitions 4/2 send in proportion, and the
// group together stays within the quota.
func TestMembersShareByPartitionsAndSumToTheQuota(t *testing.T) {
	const rate, d = 12, 3 * time.Second
	a, b := newPacer(t, rate, 0, 1, 2, 3), newPacer(t, rate, 4, 5)
	got := run(t, d, 2, a, b)
	all := append(append([]time.Time{}, got[a]...), got[b]...)
	worst := MostInWindow(all, time.Second)
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

func TestMostInWindow(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(ms ...int) []time.Time {
		out := make([]time.Time, len(ms))
		for i, m := range ms {
			out[i] = t0.Add(time.Duration(m) * time.Millisecond)
		}
		return out
	}
	for _, c := range []struct {
		name   string
		times  []time.Time
		window time.Duration
		want   int
	}{
		{"empty", nil, time.Second, 0},
		{"one", at(0), time.Second, 1},
		{"zero window", at(0, 0, 0), 0, 0},
		{"same instant", at(5, 5, 5), time.Second, 3},
		{"exactly a window apart", at(0, 1000, 2000, 3000), time.Second, 1},
		{"just under a window apart", at(0, 999), time.Second, 2},
		{"window ends before the next", at(0, 999, 1000), time.Second, 2},
		{"burst of 5 among spaced ones", at(0, 1400, 1500, 1600, 1700, 1800, 3000), time.Second, 5},
		{"burst straddling a second boundary", at(800, 900, 1000, 1100, 1200, 2500), time.Second, 5},
		{"two bursts, the second bigger", at(0, 10, 20, 5000, 5001, 5002, 5003), time.Second, 4},
		{"unsorted input", at(1800, 0, 1500, 3000, 1700, 1400, 1600), time.Second, 5},
		{"other window", at(0, 100, 200, 300, 400), 250 * time.Millisecond, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := slices.Clone(c.times)
			if got := MostInWindow(c.times, c.window); got != c.want {
				t.Errorf("MostInWindow(%v, %v) = %d, want %d", c.times, c.window, got, c.want)
			}
			if !slices.Equal(c.times, before) {
				t.Errorf("MostInWindow reordered its argument: %v, was %v", c.times, before)
			}
		})
	}
}

// A member's share follows the partitions it owns; the rate is the
// group's whatever it owns.
func TestShareFollowsOwnedPartitions(t *testing.T) {
	p, err := New(Config{Rate: 12, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		assign, release []int32
		share           float64
	}{
		{nil, nil, 0},
		{[]int32{0, 2}, nil, 6},
		{[]int32{1, 3}, nil, 12},
		{nil, []int32{0, 1, 3}, 3},
	} {
		p.Assign(c.assign)
		p.Release(c.release)
		if p.Share() != c.share || p.Rate() != 12 {
			t.Errorf("owning %v: share %v, rate %v; want %v, 12", p.Owned(), p.Share(), p.Rate(), c.share)
		}
	}
}
