package loadtest

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"shopstream/internal/edge/auth"
	"shopstream/internal/tools/loadtest/report"
)

// RampConfig is the capacity search of `shop loadtest --ramp`: offered
// orders/s from Start by Step, each step StepFor long, up to Max, while
// every request's p99 stays within P99Bound and no stage falls behind;
// then a spike at SpikeX times the highest rate that held, for SpikeFor;
// then VisibleFor at half of it, measuring accepted→visible.
type RampConfig struct {
	Start, Step, Max float64 // orders/s
	StepFor          time.Duration
	P99Bound         time.Duration
	Mix              string // MixShoppers or MixOrders
	SpikeX           float64
	SpikeFor         time.Duration // 0: no spike
	// SpikeWorkers bound the spike's requests in flight (0: Config.Workers):
	// an open-loop spike needs rate × latency of them.
	SpikeWorkers int
	VisibleFor   time.Duration // 0: no accepted→visible run
	// VisibleBound is the accepted→visible p99 the half-capacity run must
	// keep (25 ms by default).
	VisibleBound time.Duration
	// Poll is how often the accepted→visible probe reads an order.
	Poll time.Duration
}

// Defaults of RampConfig.
const (
	DefaultRampP99      = 500 * time.Millisecond
	DefaultRampSpikeX   = 5
	DefaultVisibleBound = 25 * time.Millisecond
	DefaultPoll         = 2 * time.Millisecond
	// visiblePatience is how long the probe waits for one order.
	visiblePatience = 10 * time.Second
)

// Check fills the defaults and names the first bad setting by its flag.
func (rc *RampConfig) Check() error {
	if rc.Mix == "" {
		rc.Mix = MixShoppers
	}
	if rc.P99Bound == 0 {
		rc.P99Bound = DefaultRampP99
	}
	if rc.SpikeX == 0 {
		rc.SpikeX = DefaultRampSpikeX
	}
	if rc.VisibleBound == 0 {
		rc.VisibleBound = DefaultVisibleBound
	}
	if rc.Poll == 0 {
		rc.Poll = DefaultPoll
	}
	switch {
	case rc.Start <= 0:
		return fmt.Errorf("--ramp-start %v: must be positive", rc.Start)
	case rc.Step <= 0:
		return fmt.Errorf("--ramp-step %v: must be positive", rc.Step)
	case rc.Max < rc.Start:
		return fmt.Errorf("--ramp-max %v: must be at least --ramp-start %v", rc.Max, rc.Start)
	case rc.StepFor < time.Second:
		return fmt.Errorf("--ramp-step-for %v: must be at least 1s", rc.StepFor)
	case rc.P99Bound < 0:
		return fmt.Errorf("--ramp-p99 %v: must be positive", rc.P99Bound)
	case rc.Mix != MixShoppers && rc.Mix != MixOrders:
		return fmt.Errorf("--ramp-mix %q: want %s or %s", rc.Mix, MixShoppers, MixOrders)
	case rc.SpikeX < 1:
		return fmt.Errorf("--ramp-spike-x %v: must be at least 1", rc.SpikeX)
	case rc.SpikeFor < 0:
		return fmt.Errorf("--ramp-spike-for %v: must not be negative", rc.SpikeFor)
	case rc.SpikeWorkers < 0:
		return fmt.Errorf("--ramp-spike-workers %d: must not be negative", rc.SpikeWorkers)
	case rc.VisibleFor < 0:
		return fmt.Errorf("--ramp-visible-for %v: must not be negative", rc.VisibleFor)
	}
	return nil
}

// RampCatalogue is the catalogue of a ramp: stock that lasts, so that the
// capacity measured is the shop's and not the stock's.
var RampCatalogue = Catalogue{Products: 60, HotProducts: 5, HotStock: 1_000_000, Stock: 1_000_000, Customers: 60}

// phase is a stretch of the load at one rate, for the target line.
type phase struct {
	name     string
	from, to int     // seconds since the start
	rps      float64 // requests/s asked
}

// rampRun is the state of one ramp.
type rampRun struct {
	*session
	rc     RampConfig
	rpo    float64 // requests per order
	mu     sync.Mutex
	phases []phase
	cur    atomic.Pointer[phase]
	seed   int64

	probing atomic.Bool
	probes  sync.WaitGroup
	probeMu sync.Mutex
	seen    []float64 // accepted→visible, ms
	notSeen int64
	probe   *http.Client
}

// Ramp runs the capacity search, the spike and the half-capacity run on
// one shop, then drains, checks the invariants and writes the report
// (its Ramp filled). The error wraps ErrInvariants when one fails.
func Ramp(ctx context.Context, cfg Config, rc RampConfig) (*report.Report, error) {
	if err := rc.Check(); err != nil {
		return nil, err
	}
	if cfg.Catalogue == (Catalogue{}) {
		cfg.Catalogue = RampCatalogue
	}
	s, err := open(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer s.close()
	r := &rampRun{session: s, rc: rc, rpo: requestsPerOrder(rc.Mix), seed: cfg.Profile.Seed,
		probe: auth.StaffClient(cfg.StaffKey, &http.Transport{MaxIdleConnsPerHost: 64})}
	r.probe.Timeout = 5 * time.Second
	s.c.onAnswer = r.onAnswer
	ramp := &report.Ramp{StartRate: rc.Start, Step: rc.Step, Max: rc.Max, StepFor: rc.StepFor,
		P99BoundMs: ms(rc.P99Bound), Mix: rc.Mix, RequestsPerOrder: r.rpo}
	s.rep.Ramp = ramp
	s.rep.Profile = report.Profile{Name: "ramp", BaseRPS: rc.Start * r.rpo, Seed: cfg.Profile.Seed}

	live, stopLive := context.WithCancel(ctx)
	var liveDone sync.WaitGroup
	liveDone.Go(func() { r.live(live) })
	defer func() { stopLive(); liveDone.Wait() }()

	// The ramp.
	rate, k := rc.Start, 0
	for {
		k++
		st, err := r.step(ctx, k, rate)
		if err != nil {
			ramp.Stopped = "interrupted"
			return nil, err
		}
		ramp.Steps = append(ramp.Steps, st)
		verdict := "holds"
		if !st.Holds {
			verdict = "does not hold: " + strings.Join(st.Failed, "; ")
		}
		s.out.line("step %d: %s orders/s offered (%.0f requests/s): %.1f orders/s accepted, p99 %.0f ms, %s",
			k, num(rate), rate*r.rpo, st.AcceptedOrders, st.P99, verdict)
		if st.Holds {
			ramp.Sustainable = rate
		}
		next, done, why := nextRate(rate, rc.Step, rc.Max, st.Holds)
		if done {
			if why == "max" {
				ramp.Stopped = "max"
				ramp.Bottleneck, ramp.BottleneckReason = nearest(st, ramp.P99BoundMs)
			} else {
				ramp.Bottleneck, ramp.BottleneckReason = bottleneck(st)
				ramp.Stopped = stopReason(st, ramp.Bottleneck)
			}
			break
		}
		rate = next
	}
	s.out.line("sustainable: %s orders/s; bottleneck: %s (%s)", num(ramp.Sustainable), orNone(ramp.Bottleneck), ramp.BottleneckReason)

	if ramp.Sustainable <= 0 {
		ramp.Notes = append(ramp.Notes, "the first step did not hold: no capacity to spike at or halve; lower --ramp-start")
	} else {
		if rc.SpikeFor > 0 {
			if err := r.settle(ctx); err != nil {
				return nil, err
			}
			sp, err := r.spike(ctx, ramp.Sustainable)
			if err != nil {
				return nil, err
			}
			ramp.Spike = sp
		}
		if rc.VisibleFor > 0 {
			if err := r.settle(ctx); err != nil {
				return nil, err
			}
			v, err := r.visible(ctx, ramp.Sustainable/2)
			if err != nil {
				return nil, err
			}
			ramp.Visible = v
		}
	}
	stopLive()
	liveDone.Wait()

	loadEnd := time.Since(s.start)
	r.mu.Lock()
	phases := append([]phase(nil), r.phases...)
	r.mu.Unlock()
	seconds := 0
	if len(phases) > 0 {
		seconds = phases[len(phases)-1].to
	}
	return s.finish(ctx, loadEnd, seconds, func(sec int) float64 {
		for _, p := range phases {
			if sec >= p.from && sec < p.to {
				return p.rps
			}
		}
		return 0
	})
}

// run drives one phase of ordersPerSec for d from the next whole second
// of the load with workers requests in flight at most, and returns its
// seconds [from, to), the second its last request started by (last ≥ to
// when the generator fell behind and started some late) and the stage
// snapshots around it.
func (r *rampRun) run(ctx context.Context, name string, ordersPerSec float64, d time.Duration, workers int) (from, to, last int, a, b stageSnap, err error) {
	d = d.Truncate(time.Second)
	// Start on a whole second, so the recorder's seconds are the phase's.
	since := time.Since(r.start)
	from = int((since + time.Second - 1) / time.Second)
	select {
	case <-ctx.Done():
		return 0, 0, 0, a, b, ctx.Err()
	case <-time.After(time.Duration(from)*time.Second - since):
	}
	to = from + int(d/time.Second)
	p := &phase{name: name, from: from, to: to, rps: ordersPerSec * r.rpo}
	r.mu.Lock()
	r.phases = append(r.phases, *p)
	r.mu.Unlock()
	r.seed++
	prof := Profile{Name: Steady, BaseRPS: p.rps, Duration: d, Seed: r.seed, Mix: r.rc.Mix}
	a = r.smp.snapshot(ctx)
	r.cur.Store(p)
	drive(ctx, prof, r.w, r.c, workers, r.start.Add(time.Duration(from)*time.Second))
	r.cur.Store(nil)
	last = max(to, int((time.Since(r.start)+time.Second-1)/time.Second))
	b = r.smp.snapshot(ctx)
	return from, to, last, a, b, ctx.Err()
}

// step runs step k at rate orders/s and measures it.
func (r *rampRun) step(ctx context.Context, k int, rate float64) (report.RampStep, error) {
	late := r.rec.lateCount()
	from, to, last, a, b, err := r.run(ctx, fmt.Sprintf("step %d", k), rate, r.rc.StepFor, r.cfg.Workers)
	if err != nil {
		return report.RampStep{}, err
	}
	secs := float64(to - from)
	st := measureStep(stepInput{
		offered: rate, offeredRPS: rate * r.rpo, secs: secs, win: r.rec.Window(from, last), late: r.rec.lateCount() - late,
		from: a, to: b, tail: r.smp.lagMinSince(float64(from) + secs*2/3), p99BoundMs: ms(r.rc.P99Bound),
	})
	st.From, st.To = float64(from), float64(to)
	return st, nil
}

// settle waits (within the drain timeout) until no group but the
// quota-bound one lags, so that a phase starts on an idle pipeline.
func (r *rampRun) settle(ctx context.Context) error {
	began := time.Now()
	var shown time.Time
	for {
		groups, at := r.smp.lastLag()
		var behind int64
		for g, l := range groups {
			if !quotaBound(g) {
				behind += l
			}
		}
		if groups != nil && at.After(began) && behind == 0 {
			return nil
		}
		if time.Since(began) > r.cfg.DrainTimeout {
			r.out.line("settle: gave up after %v, lag %s", time.Since(began).Round(time.Second), lagLine(groups))
			return nil
		}
		if time.Since(shown) >= time.Second {
			shown = time.Now()
			r.out.status("settling %3.0fs: lag %s", time.Since(began).Seconds(), lagLine(groups))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// spike offers x times the sustainable rate, then measures how long its
// orders take to be done.
func (r *rampRun) spike(ctx context.Context, sustainable float64) (*report.Spike, error) {
	rate := sustainable * r.rc.SpikeX
	r.out.line("spike: %s orders/s (%s× %s) for %v …", num(rate), num(r.rc.SpikeX), num(sustainable), r.rc.SpikeFor)
	before, late := len(r.w.snapshot().Orders), r.rec.lateCount()
	workers := r.cfg.Workers
	if r.rc.SpikeWorkers > 0 {
		workers = r.rc.SpikeWorkers
	}
	from, to, last, _, b, err := r.run(ctx, "spike", rate, r.rc.SpikeFor, workers)
	if err != nil {
		return nil, err
	}
	ended := time.Now()
	win := r.rec.Window(from, last) // the requests started late belong to the spike too
	win.answers.Late = r.rec.lateCount() - late
	orders := r.w.snapshot().Orders[before:]
	sp := &report.Spike{X: r.rc.SpikeX, Offered: rate, For: time.Duration(to-from) * time.Second, Took: ended.Sub(r.start.Add(time.Duration(from) * time.Second)),
		Workers: workers, Answers: win.answers,
		P99: percentile(win.all, 99), AcceptedOrders: int64(len(orders)), BacklogRecords: b.lag,
		No500: win.answers.Status500 == 0, Sheds: win.answers.ShedWithoutRetryAfter == 0}

	// The backlog: the spike's orders not yet done as it ended.
	pending, _, _ := stillPending(ctx, r.smp, orders, false)
	sp.BacklogOrders = int64(len(pending))
	sp.Bound = drainBound(sp.BacklogOrders, sustainable)
	dctx, cancel := context.WithTimeout(ctx, r.cfg.DrainTimeout)
	defer cancel()
	var shown time.Time
	for {
		groups, at := r.smp.lastLag()
		var behind int64
		for g, l := range groups {
			if !quotaBound(g) {
				behind += l
			}
		}
		if len(pending) == 0 && groups != nil && at.After(ended) && behind == 0 {
			sp.Drained = true
			break
		}
		if time.Since(shown) >= time.Second {
			shown = time.Now()
			r.out.status("spike drain %5.1fs (bound %v): %d of %d orders not done | lag %s", time.Since(ended).Seconds(),
				sp.Bound.Round(100*time.Millisecond), len(pending), sp.BacklogOrders, lagLine(groups))
		}
		select {
		case <-dctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
		if dctx.Err() != nil {
			break
		}
		pending, _, _ = stillPending(dctx, r.smp, pending, false)
	}
	sp.Drain = time.Since(ended)
	sp.BoundHolds = sp.Drained && sp.Drain <= sp.Bound
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a := sp.Answers
	r.out.line("spike: %d sent, %d ok, %d shed 429, %d 503, %d 500, %d other 5xx, %d client timeouts, %d sheds without Retry-After; "+
		"%d orders accepted, %d not done at its end; drained in %v (bound 1.2 × %d ÷ %s/s = %v: %s)",
		a.Sent, a.OK, a.Shed429, a.Shed503, a.Status500, a.Other5xx, a.Timeouts, a.ShedWithoutRetryAfter,
		sp.AcceptedOrders, sp.BacklogOrders, sp.Drain.Round(time.Millisecond), sp.BacklogOrders, num(sustainable),
		sp.Bound.Round(time.Millisecond), holdsWord(sp.BoundHolds))
	return sp, nil
}

// visible offers rate orders/s and probes each accepted order until the
// read model shows it.
func (r *rampRun) visible(ctx context.Context, rate float64) (*report.Visibility, error) {
	r.out.line("half capacity: %s orders/s for %v, probing accepted→visible every %v …", num(rate), r.rc.VisibleFor, r.rc.Poll)
	r.probing.Store(true)
	from, to, last, _, _, err := r.run(ctx, "half capacity", rate, r.rc.VisibleFor, r.cfg.Workers)
	r.probing.Store(false)
	r.probes.Wait()
	if err != nil {
		return nil, err
	}
	r.probeMu.Lock()
	seen, notSeen := r.seen, r.notSeen
	r.probeMu.Unlock()
	v := &report.Visibility{Offered: rate, For: time.Duration(to-from) * time.Second, Answers: r.rec.Window(from, last).answers,
		Seen: int64(len(seen)), NotSeen: notSeen, P50: percentile(seen, 50), P99: percentile(seen, 99), Max: percentile(seen, 100),
		PollMs: ms(r.rc.Poll), BoundMs: ms(r.rc.VisibleBound)}
	v.Orders = v.Seen + v.NotSeen
	v.BoundHolds = v.Seen > 0 && v.NotSeen == 0 && v.P99 <= v.BoundMs
	r.out.line("accepted→visible at %s orders/s: %d orders, p50 %.1f ms, p99 %.1f ms, max %.1f ms (bound %.0f ms: %s), %d never seen",
		num(rate), v.Orders, v.P50, v.P99, v.Max, v.BoundMs, holdsWord(v.BoundHolds), v.NotSeen)
	return v, nil
}

// onAnswer starts the accepted→visible probe of an accepted order while
// the half-capacity run is on.
func (r *rampRun) onAnswer(route string, status int, id string) {
	if route != "POST /orders" || status/100 != 2 || id == "" || !r.probing.Load() {
		return
	}
	accepted := time.Now()
	r.probes.Go(func() {
		took, ok := r.watch(id, accepted)
		r.probeMu.Lock()
		defer r.probeMu.Unlock()
		if ok {
			r.seen = append(r.seen, ms(took))
		} else {
			r.notSeen++
		}
	})
}

// watch reads GET /orders/{id} every Poll until it answers 200.
func (r *rampRun) watch(id string, accepted time.Time) (time.Duration, bool) {
	for time.Since(accepted) < visiblePatience {
		resp, err := r.probe.Get(r.c.base + "/orders/" + id)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(accepted), true
			}
		}
		time.Sleep(r.rc.Poll)
	}
	return 0, false
}

// live shows a line a second: the phase, the last second's answers, lag.
func (r *rampRun) live(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p := r.cur.Load()
		if p == nil {
			continue
		}
		sec := int(time.Since(r.start)/time.Second) - 1
		l := r.rec.Second(sec)
		r.c.toConsole(ctx, "ramp: "+p.name, sec, p.rps, l)
		lag, _ := r.smp.lastLag()
		r.out.status("[%s %2d/%ds] target %4.0f orders/s (%4.0f req/s) sent %4d/s answered %4d: ok %4d shed %3d 4xx %3d err %3d p95 %5.0fms | lag %s",
			p.name, max(0, sec-p.from+1), p.to-p.from, p.rps/r.rpo, p.rps, l.Sent, l.Answered, l.OK, l.Shed, l.Refused, l.Errors, l.P95, lagLine(lag))
	}
}

// nearest names, for a ramp that held to its maximum, the stage nearest
// its limit: the one to watch if the shop is asked for more.
func nearest(st report.RampStep, boundMs float64) (string, string) {
	best, load := "", -1.0
	for _, s := range st.Stages {
		if s.Quota {
			continue
		}
		var l float64
		switch s.Name {
		case StageLoadgen:
			continue
		case StageGateway, StagePostgres:
			l = s.P99Ms / math.Max(boundMs, 1e-9)
		default:
			if s.BacklogEnd >= 0 {
				l = float64(s.BacklogEnd) / slack(s.Expected)
			}
		}
		if l > load {
			best, load = s.Name, l
		}
	}
	if best == "" {
		return "", "every step held up to --ramp-max"
	}
	return best, fmt.Sprintf("every step held up to --ramp-max; nearest its limit: %s at %.0f %% of it", best, 100*load)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func num(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func holdsWord(b bool) string {
	if b {
		return "holds"
	}
	return "does NOT hold"
}
