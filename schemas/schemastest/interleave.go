package schemastest

import (
	"runtime"
	"time"
)

// Figure is what Interleaved measured of one operation, per call.
type Figure struct {
	Ns, Bytes, Allocs float64
}

// Interleaved measures ops in turns, for the ratios of benchmarks on a
// shared machine: rounds rounds, each running every op, one after the other,
// for about per. An op's figure is its fastest round, so that a burst of
// load from other processes that slows one round of one op does not skew
// its ratio to the others, measured moments apart. Bytes and allocations are
// those of the same round (runtime.MemStats, every goroutine's: keep the
// process otherwise idle). It stops at the first error.
func Interleaved(ops []func() error, rounds int, per time.Duration) ([]Figure, error) {
	n := make([]int, len(ops))
	for i, op := range ops { // calibrate: calls per round
		n[i] = 1
		for {
			start := time.Now()
			for range n[i] {
				if err := op(); err != nil {
					return nil, err
				}
			}
			if d := time.Since(start); d >= per/4 || n[i] >= 1<<30 {
				n[i] = max(1, int(float64(n[i])*float64(per)/float64(max(d, time.Nanosecond))))
				break
			}
			n[i] *= 4
		}
	}
	out := make([]Figure, len(ops))
	var m0, m1 runtime.MemStats
	for r := range rounds {
		for i, op := range ops {
			runtime.ReadMemStats(&m0)
			start := time.Now()
			for range n[i] {
				if err := op(); err != nil {
					return nil, err
				}
			}
			d := time.Since(start)
			runtime.ReadMemStats(&m1)
			calls := float64(n[i])
			f := Figure{Ns: float64(d.Nanoseconds()) / calls,
				Bytes: float64(m1.TotalAlloc-m0.TotalAlloc) / calls, Allocs: float64(m1.Mallocs-m0.Mallocs) / calls}
			if r == 0 || f.Ns < out[i].Ns {
				out[i] = f
			}
		}
	}
	return out, nil
}
