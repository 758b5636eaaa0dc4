// Package latency samples the latency of an operation in tests and
// benchmarks, and reads percentiles off the samples.
package latency

import (
	"math"
	"slices"
	"time"
)

// Sorted is a set of latencies in ascending order.
type Sorted []time.Duration

// Sort sorts lat in place and returns it as Sorted.
func Sort(lat []time.Duration) Sorted {
	slices.Sort(lat)
	return Sorted(lat)
}

// At is the p-th percentile (0 < p ≤ 100) by nearest rank: the smallest
// sample that at least p % of the samples do not exceed. It is 0 when
// there is no sample.
func (s Sorted) At(p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Sample runs op until budget has passed, and at least atLeast times, but
// never more than atMost times, and returns its latencies sorted.
func Sample(budget time.Duration, atLeast, atMost int, op func()) Sorted {
	var lat []time.Duration
	start := time.Now()
	for len(lat) < atMost && (len(lat) < atLeast || time.Since(start) < budget) {
		t0 := time.Now()
		op()
		lat = append(lat, time.Since(t0))
	}
	return Sort(lat)
}
