package runnertest

import (
	"runtime"
	"testing"
)

// MemStart samples the allocation counters before a benchmark loop.
func MemStart() runtime.MemStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// ReportPerEvent reports the time and the allocations per event of a
// benchmark whose every op folded events events, allocations counted
// since start (the loop's own bookkeeping is negligible).
func ReportPerEvent(b *testing.B, events int, start runtime.MemStats) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	n := float64(b.N) * float64(events)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/event")
	b.ReportMetric(float64(m.Mallocs-start.Mallocs)/n, "allocs/event")
	b.ReportMetric(float64(m.TotalAlloc-start.TotalAlloc)/n, "B/event")
	b.ReportMetric(float64(events), "events/op")
}
