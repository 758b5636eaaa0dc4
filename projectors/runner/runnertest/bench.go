package runnertest

import (
	"runtime"
	"testing"

	"shopstream/internal/platform/eventlog"
)

// BenchmarkFold measures apply alone, in memory, over docs (each
// document's events in order, as the runner folds a batch), reporting per
// event:
//
//   - log: the events folded into empty documents; folded must hold for
//     the last document, or nothing was folded;
//   - redelivered: the same events folded again over the finished
//     documents, every one already applied: the version guard alone.
func BenchmarkFold[V any](b *testing.B, apply func(V, eventlog.Envelope) V, docs [][]eventlog.Envelope, folded func(V) bool) {
	events := 0
	built := make([]V, len(docs))
	for i, envs := range docs {
		events += len(envs)
		for _, env := range envs {
			built[i] = apply(built[i], env)
		}
	}
	run := func(b *testing.B, from func(i int) V) V {
		b.ReportAllocs()
		var v V
		m := MemStart()
		for b.Loop() {
			for i, envs := range docs {
				v = from(i)
				for _, env := range envs {
					v = apply(v, env)
				}
			}
		}
		ReportPerEvent(b, events, m)
		return v
	}
	b.Run("log", func(b *testing.B) {
		if !folded(run(b, func(int) V { var zero V; return zero })) {
			b.Fatal("nothing folded")
		}
	})
	b.Run("redelivered", func(b *testing.B) { run(b, func(i int) V { return built[i] }) })
}

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
