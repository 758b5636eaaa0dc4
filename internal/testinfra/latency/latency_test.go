package latency

import (
	"testing"
	"time"
)

func TestAtIsTheNearestRank(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- { // 100 ms … 1 ms, unsorted
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	s := Sort(lat)
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.5, time.Millisecond}, {99.5, 100 * time.Millisecond}} {
		if got := s.At(c.p); got != c.want {
			t.Errorf("At(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := Sort([]time.Duration{7, 3}).At(50); got != 3 {
		t.Errorf("median of {3, 7} = %v, want 3 (nearest rank)", got)
	}
	if got := Sorted(nil).At(99); got != 0 {
		t.Errorf("At of no sample = %v, want 0", got)
	}
}

func TestSampleKeepsItsBounds(t *testing.T) {
	calls := 0
	s := Sample(0, 5, 100, func() { calls++ })
	if calls != 5 || len(s) != 5 {
		t.Errorf("budget spent: %d calls, %d samples, want at least 5 of each", calls, len(s))
	}
	calls = 0
	s = Sample(time.Hour, 1, 7, func() { calls++ })
	if calls != 7 || len(s) != 7 {
		t.Errorf("%d calls, %d samples, want at most 7", calls, len(s))
	}
	for i := 1; i < len(s); i++ {
		if s[i] < s[i-1] {
			t.Fatalf("samples not sorted: %v", s)
		}
	}
}
