package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"shopstream/internal/testinfra/testenv"
)

// consoleCostOrder is the order of the windows, open (true) or closed:
// ABBA then BAAB, so that both sides sit at about the same mean time into
// the load test, and a load that changes as the run goes on (orders,
// customers, the email backlog) falls on both alike. A closed window after an open one
// starts idleConsole after the stream ended, once the console's sampler
// has stopped.
var consoleCostOrder = []bool{true, false, false, true, false, true, true, false}

// Knobs of the console's cost measurement, for runs longer than the
// suite's: each window's length in seconds (default 8), and how many
// times consoleCostOrder runs (default 1).
const (
	envConsoleCostSeconds = "SHOP_TEST_CONSOLE_COST_SECONDS"
	envConsoleCostRounds  = "SHOP_TEST_CONSOLE_COST_ROUNDS"
)

// settle is the wait before window i of order: consoleInterval after the
// stream is opened, for the sampler to run; idleConsole after it is
// closed (or before a first closed window), for the sampler to stop; none
// between two windows alike.
func settle(order []bool, i int) time.Duration {
	prevOpen := i > 0 && order[i-1]
	switch open := order[i]; {
	case open && !prevOpen:
		return consoleInterval
	case !open && (i == 0 || prevOpen):
		return idleConsole
	}
	return 0
}

// consoleCostWarmUp is the load test's start left out (its shoppers sign
// up at once, a burst of password hashes).
const (
	consoleCostWarmUp = 20 * time.Second
	// consoleProbeEvery is the probe's pace: one request every 10 ms,
	// sent on schedule whatever the answers take (an open loop, so a
	// slow answer does not hide the ones it delays).
	consoleProbeEvery = 10 * time.Millisecond
)

// probeSample is one probe request: when it was sent and what it took.
type probeSample struct {
	at   time.Time
	took time.Duration
	ok   bool
}

// costWindow is a stretch of time with the console open or closed, and
// the CPU shop dev's process tree used during it.
type costWindow struct {
	open     bool
	from, to time.Time
	cpu      time.Duration
}

// measureConsoleCost measures what an open console costs the API, and
// returns the figures as text. A steady `shop loadtest` runs against dev
// throughout. Meanwhile the console's live pipeline stream is opened (read
// as a page reads it) and closed in turn, in the windows of
// consoleCostOrder, and a probe reads GET /products/{id} and GET /orders/{id} every
// consoleProbeEvery. The windows alternate so that a drift of the machine
// (these 2 cores are shared with the rest of the suite) falls on both
// sides alike, and the p99 of each side pools every probe answer of its
// windows, about 3,200 a side. Two figures tell how far to trust the
// ratio: the same ratio between each side's own halves (in runs with no
// console at all on either side it ranged 1.02–1.30× on 2026-12-06), and
// whether the open side's slow answers fall when the console samples
// (sampleTimeShares). It fails only if the load test or a probe
// request fails, or if the stream sent nothing while it was open: the
// figures are measured, not asserted.
func measureConsoleCost(t *testing.T, dev *devProcess, bin, dir, console, product, order string) string {
	t.Helper()
	// The load lasts the warm-up, every window and what comes before it,
	// then the profile (after the stream is opened again), and 5 s more.
	window := time.Duration(testenv.Int(t, envConsoleCostSeconds, 8)) * time.Second
	var plan []bool
	for range testenv.Int(t, envConsoleCostRounds, 1) {
		plan = append(plan, consoleCostOrder...)
	}
	loadFor := consoleCostWarmUp + 5*time.Second + consoleInterval + consoleProfileFor
	for i := range plan {
		loadFor += settle(plan, i) + window
	}
	load := exec.Command(bin, "loadtest", "--target", dev.base, "--data-dir", dir, "--profile", "steady", "--duration", loadFor.String(),
		"--base-rps", "20", "--email-quota", "5", "--drain-timeout", "2m", "--out", t.TempDir())
	var loadOut strings.Builder
	load.Stdout, load.Stderr = &loadOut, &loadOut
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	loadDone := make(chan error, 1)
	go func() { loadDone <- load.Wait() }()

	probeCtx, stopProbe := context.WithCancel(context.Background())
	var mu sync.Mutex
	var samples []probeSample
	var probes sync.WaitGroup
	probes.Go(func() {
		tick := time.NewTicker(consoleProbeEvery)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-probeCtx.Done():
				return
			case <-tick.C:
			}
			url := dev.base + "/products/" + product
			if i%2 == 1 {
				url = dev.base + "/orders/" + order
			}
			probes.Go(func() {
				at := time.Now()
				resp, err := dev.client.Get(url)
				ok := err == nil && resp.StatusCode == http.StatusOK
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				samples = append(samples, probeSample{at: at, took: time.Since(at), ok: ok})
				mu.Unlock()
			})
		}
	})

	time.Sleep(consoleCostWarmUp) // the load test's shoppers sign up and start
	var windows []costWindow
	measure := func(open bool) {
		w := costWindow{open: open, from: time.Now()}
		cpu := treeCPU(dev.cmd.Process.Pid)
		time.Sleep(window)
		w.to, w.cpu = time.Now(), treeCPU(dev.cmd.Process.Pid)-cpu
		windows = append(windows, w)
	}
	var arrived []time.Time // when each fragment reached the reader
	var stop context.CancelFunc
	var read chan struct{}
	openStream := func() {
		var watch context.Context
		watch, stop = context.WithCancel(context.Background())
		read = make(chan struct{})
		go func() {
			defer close(read)
			readStream(watch, console+"/events?view=pipeline", func() {
				mu.Lock()
				arrived = append(arrived, time.Now())
				mu.Unlock()
			})
		}()
		time.Sleep(consoleInterval) // the sampler is running
	}
	closeStream := func() {
		stop()
		<-read
		stop = nil
	}
	for i, open := range plan {
		switch {
		case open && stop == nil:
			openStream()
		case !open && settle(plan, i) > 0:
			if stop != nil {
				closeStream()
			}
			time.Sleep(idleConsole) // the sampler has stopped
		}
		measure(open)
	}
	// A CPU profile of shop dev under the same load, the stream open (the
	// last window is a closed one), tells the console's own share.
	openStream()
	share := consoleCPUShare(t, dev.admin)
	closeStream()
	stopProbe()
	probes.Wait()
	if err := <-loadDone; err != nil {
		t.Fatalf("load test: %v\n%s", err, tail(loadOut.String(), 30))
	}
	fragments := len(arrived)
	if fragments < len(plan)/2 {
		t.Fatalf("the console's stream sent %d fragments over %d open windows: it was not live", fragments, len(plan)/2)
	}

	// side pools one side's windows: all of them (half 0), its first half
	// (1) or its second (2).
	side := func(open bool, half int) (lat []float64, failed int, cpu, span time.Duration) {
		var ws []costWindow
		for _, w := range windows {
			if w.open == open {
				ws = append(ws, w)
			}
		}
		switch half {
		case 1:
			ws = ws[:len(ws)/2]
		case 2:
			ws = ws[len(ws)/2:]
		}
		for _, w := range ws {
			cpu += w.cpu
			span += w.to.Sub(w.from)
			for _, s := range samples {
				if s.at.Before(w.from) || !s.at.Before(w.to) {
					continue
				}
				if !s.ok {
					failed++
				}
				lat = append(lat, float64(s.took)/float64(time.Millisecond))
			}
		}
		slices.Sort(lat)
		return lat, failed, cpu, span
	}
	closedLat, closedFailed, closedCPU, closedSpan := side(false, 0)
	openLat, openFailed, openCPU, openSpan := side(true, 0)
	if closedFailed+openFailed > 0 {
		t.Errorf("probe requests failed: %d with the console closed, %d open", closedFailed, openFailed)
	}
	if len(closedLat) == 0 || len(openLat) == 0 {
		t.Fatalf("no probe answers: %d closed, %d open", len(closedLat), len(openLat))
	}
	q := func(lat []float64, p float64) float64 { return lat[min(len(lat)-1, int(p/100*float64(len(lat))))] }
	cpuShare := func(cpu, span time.Duration) float64 { return float64(cpu) / float64(span) }
	// The ratio's own noise: each side's later two windows against its
	// first two, where nothing differs but the time.
	p99Drift := func(open bool) float64 {
		first, _, _, _ := side(open, 1)
		second, _, _, _ := side(open, 2)
		return q(second, 99) / q(first, 99)
	}
	during, slowDuring, slowElse := sampleTimeShares(samples, windows, arrived, q(closedLat, 95))
	return fmt.Sprintf("console cost, under a steady load test (20 requests/s) in %d windows of %v, open and closed in ABBA order, probing GET /products/{id} and GET /orders/{id} every %v:\n"+
		"  p99 of the API: console closed %.1f ms (%d answers), its live pipeline streamed %.1f ms (%d answers, %d fragments): %.2f×\n"+
		"  p95: closed %.1f ms, open %.1f ms: %.2f×; p50: closed %.1f ms, open %.1f ms: %.2f×\n"+
		"  CPU of shop dev and its PostgreSQL: closed %.1f%% of a core, open %.1f%%: %.2f×\n"+
		"  the p99's own noise in this run, each side's last two windows against its first two: closed %.2f×, open %.2f×\n"+
		"  open probes sent in the %v before a sample reached the page: %d, of which %.1f%% slower than the closed side's p95; the other open probes: %.1f%%\n"+
		"  %s\n",
		len(plan), window, consoleProbeEvery,
		q(closedLat, 99), len(closedLat), q(openLat, 99), len(openLat), fragments, q(openLat, 99)/q(closedLat, 99),
		q(closedLat, 95), q(openLat, 95), q(openLat, 95)/q(closedLat, 95), q(closedLat, 50), q(openLat, 50), q(openLat, 50)/q(closedLat, 50),
		100*cpuShare(closedCPU, closedSpan), 100*cpuShare(openCPU, openSpan), cpuShare(openCPU, openSpan)/cpuShare(closedCPU, closedSpan),
		p99Drift(false), p99Drift(true), consoleSampleSpan, during, 100*slowDuring, 100*slowElse, share)
}

// consoleSampleSpan is the stretch before a fragment reaches the page in
// which the console measured and rendered it: the sampler's Kafka and
// PostgreSQL requests, the page's rendering, the write.
const consoleSampleSpan = 300 * time.Millisecond

// sampleTimeShares tells whether the open windows' slow answers fall when
// the console works. Of the open windows' probes, it counts those sent in
// the consoleSampleSpan before a fragment arrived, and the share of them
// slower than slow (ms), and that share among the other open probes. A
// console that slowed the API would show a higher share at its sampling
// times; the load's own bursts fall on both alike.
func sampleTimeShares(samples []probeSample, windows []costWindow, arrived []time.Time, slow float64) (during int, slowDuring, slowElse float64) {
	slices.SortFunc(arrived, time.Time.Compare)
	var nDuring, nElse, sDuring, sElse int
	for _, w := range windows {
		if !w.open {
			continue
		}
		for _, s := range samples {
			if s.at.Before(w.from) || !s.at.Before(w.to) {
				continue
			}
			i, _ := slices.BinarySearchFunc(arrived, s.at, time.Time.Compare) // the next fragment
			isSlow := float64(s.took)/float64(time.Millisecond) > slow
			if i < len(arrived) && arrived[i].Sub(s.at) <= consoleSampleSpan {
				nDuring++
				if isSlow {
					sDuring++
				}
				continue
			}
			nElse++
			if isSlow {
				sElse++
			}
		}
	}
	share := func(s, n int) float64 {
		if n == 0 {
			return 0
		}
		return float64(s) / float64(n)
	}
	return nDuring, share(sDuring, nDuring), share(sElse, nElse)
}

// consoleProfileFor is how long consoleCPUShare profiles shop dev.
const consoleProfileFor = 10 * time.Second

// consoleCPUShare profiles shop dev's CPU for consoleProfileFor through
// its admin listener's /debug/pprof/profile, with the console's stream
// open, and returns what share of the samples the console took: those
// with a frame of the console's package (its sampler, its pages and
// streams, the Kafka admin requests it sends), plus those of the embedded
// broker's handlers of the requests the console sends (ListOffsets,
// DescribeGroups, ListGroups, OffsetFetch; the load test's lag readings
// send them too). It misses the client's and the broker's work in their
// own goroutines (encoding, the groups' coordinators) and the outbox count
// inside PostgreSQL, so it understates the console's cost: it tells how
// little of the console's cost is its own code, not the whole cost.
func consoleCPUShare(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", admin, int(consoleProfileFor/time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CPU profile: %s", resp.Status)
	}
	prof, err := profile.Parse(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	brokerSide := []string{"kfake.(*Cluster).handleListOffsets", "kfake.(*Cluster).handleDescribeGroups",
		"kfake.(*Cluster).handleListGroups", "kfake.(*Cluster).handleOffsetFetch"}
	var all, console int64
	for _, s := range prof.Sample {
		n := s.Value[0] // samples
		all += n
	sample:
		for _, loc := range s.Location {
			for _, line := range loc.Line {
				name := line.Function.Name
				if strings.HasPrefix(name, "shopstream/internal/edge/console.") ||
					slices.ContainsFunc(brokerSide, func(h string) bool { return strings.HasSuffix(name, h) }) {
					console += n
					break sample
				}
			}
		}
	}
	if all == 0 {
		t.Fatal("CPU profile: no samples")
	}
	return fmt.Sprintf("a CPU profile of shop dev over %v with the console open: the console took %d of %d samples (%.2f%%)",
		consoleProfileFor, console, all, 100*float64(console)/float64(all))
}
