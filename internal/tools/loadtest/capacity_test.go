package loadtest

import (
	"math"
	"strings"
	"testing"
	"time"

	"shopstream/internal/tools/loadtest/report"
)

func TestNextRate(t *testing.T) {
	for _, c := range []struct {
		name           string
		cur, step, max float64
		held           bool
		next           float64
		done           bool
		why            string
	}{
		{"held: one step up", 5, 5, 50, true, 10, false, ""},
		{"held: up to max exactly", 45, 5, 50, true, 50, false, ""},
		{"held at max: done", 50, 5, 50, true, 0, true, "max"},
		{"held: the next step would pass max", 48, 5, 50, true, 0, true, "max"},
		{"fractional steps sum to max", 0.3, 0.1, 0.4, true, 0.4, false, ""},
		{"failed: done", 20, 5, 50, false, 0, true, "failed"},
		{"failed at the first step", 5, 5, 50, false, 0, true, "failed"},
		{"no step: done", 5, 0, 50, true, 0, true, "max"},
	} {
		next, done, why := nextRate(c.cur, c.step, c.max, c.held)
		if math.Abs(next-c.next) > 1e-9 || done != c.done || why != c.why {
			t.Errorf("%s: nextRate(%v, %v, %v, %v) = %v, %v, %q; want %v, %v, %q", c.name, c.cur, c.step, c.max, c.held, next, done, why, c.next, c.done, c.why)
		}
	}
}

func TestDrainBound(t *testing.T) {
	for _, c := range []struct {
		backlog  int64
		capacity float64
		want     time.Duration
	}{
		{100, 10, 12 * time.Second},
		{0, 10, 0},
		{1, 4, 300 * time.Millisecond},
		{500, 0, 0}, // no capacity: no bound
		{30, 25, 1440 * time.Millisecond},
	} {
		if got := drainBound(c.backlog, c.capacity); got != c.want {
			t.Errorf("drainBound(%d, %v) = %v, want %v", c.backlog, c.capacity, got, c.want)
		}
	}
}

func stage(name string, holds bool, severity float64) report.Stage {
	return report.Stage{Name: name, Holds: holds, Severity: severity, Reason: name + " reason"}
}

func TestBottleneck(t *testing.T) {
	email := report.Stage{Name: "shop.processor.email.v1", Quota: true, Holds: true}
	failingEmail := email
	failingEmail.Holds = false
	for _, c := range []struct {
		name   string
		stages []report.Stage
		want   string
	}{
		{"every stage holds", []report.Stage{stage(StageGateway, true, 0), stage("shop.processor.saga.v1", true, 0), email}, ""},
		{"one group behind", []report.Stage{stage(StageGateway, true, 0), stage("shop.projector.orders.v3", false, 0.4), email}, "shop.projector.orders.v3"},
		{"the group growing fastest for its intake", []report.Stage{
			stage("shop.processor.saga.v1", false, 0.1), stage("shop.projector.orders.v3", false, 0.6), stage("shop.processor.billing.v1", false, 0.3)},
			"shop.projector.orders.v3"},
		{"upstream before downstream", []report.Stage{stage(StageRelay, false, 0.1), stage("shop.projector.orders.v3", false, 5)}, StageRelay},
		{"postgres before the gateway it slows", []report.Stage{stage(StageGateway, false, 0), stage(StagePostgres, false, 0), stage(StageRelay, false, 1)}, StagePostgres},
		{"the generator before all", []report.Stage{stage(StageLoadgen, false, 0), stage(StageGateway, false, 0)}, StageLoadgen},
		{"the quota-bound email group is never it", []report.Stage{failingEmail, stage("shop.processor.saga.v1", true, 0)}, ""},
		{"email lagging, a projector too", []report.Stage{failingEmail, stage("shop.projector.products.v2", false, 0.2)}, "shop.projector.products.v2"},
	} {
		got, reason := bottleneck(report.RampStep{Stages: c.stages})
		if got != c.want {
			t.Errorf("%s: bottleneck = %q, want %q", c.name, got, c.want)
		}
		if got != "" && reason != got+" reason" {
			t.Errorf("%s: reason %q is not the bottleneck's", c.name, reason)
		}
	}
}

func TestStopReason(t *testing.T) {
	gwP99 := report.RampStep{Stages: []report.Stage{{Name: StageGateway, Reason: "p99 600 ms over the bound of 500 ms"}}}
	gwShed := report.RampStep{Stages: []report.Stage{{Name: StageGateway, Reason: "12 of 100 answers lost"}}}
	for _, c := range []struct {
		st   report.RampStep
		bn   string
		want string
	}{
		{gwP99, StageGateway, "p99"}, {gwShed, StageGateway, "shed"}, {gwShed, StagePostgres, "p99"},
		{gwShed, StageRelay, "lag"}, {gwShed, "shop.processor.saga.v1", "lag"}, {gwShed, StageLoadgen, "loadgen"}, {gwShed, "", ""},
	} {
		if got := stopReason(c.st, c.bn); got != c.want {
			t.Errorf("stopReason(%q) = %q, want %q", c.bn, got, c.want)
		}
	}
}

// snap builds a stage snapshot: group → committed, lag, intake.
func snap(at time.Time, backlog int64, commands histogram, groups map[string][3]int64, ends map[string]int64) stageSnap {
	s := stageSnap{at: at, lagOK: true, backlog: backlog, commands: commands,
		committed: map[string]int64{}, lag: map[string]int64{}, intake: map[string]int64{}, ends: ends}
	for g, v := range groups {
		s.committed[g], s.lag[g], s.intake[g] = v[0], v[1], v[2]
	}
	return s
}

func stageOf(t *testing.T, st report.RampStep, name string) report.Stage {
	t.Helper()
	for _, s := range st.Stages {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no stage %s in %+v", name, st.Stages)
	return report.Stage{}
}

func TestMeasureStep(t *testing.T) {
	t0 := time.Now()
	cmds := func(n float64, slow bool) histogram {
		h := histogram{bounds: []float64{0.01, 0.1, 1, math.Inf(1)}}
		if slow { // 5 % of commands between 0.1 and 1 s
			h.counts = []float64{n * 0.95, n * 0.95, n, n}
		} else {
			h.counts = []float64{n, n, n, n}
		}
		h.count = n
		return h
	}
	const saga, orders, email = "shop.processor.saga.v1", "shop.projector.orders.v3", "shop.processor.email.v1"
	base := func() stepInput {
		win := window{answers: report.Answers{Sent: 770, OK: 770}, acceptedOrders: 100, commands: 400, commandsSent: 400, answered: 770}
		for range 770 {
			win.all = append(win.all, 10)
		}
		return stepInput{offered: 10, offeredRPS: 77, secs: 10, win: win, p99BoundMs: 500,
			from: snap(t0, 0, cmds(1000, false), map[string][3]int64{saga: {1000, 0, 1000}, orders: {5000, 0, 5000}, email: {100, 0, 100}},
				map[string]int64{"orders": 5000}),
			to: snap(t0.Add(10*time.Second), 3, cmds(1400, false), map[string][3]int64{saga: {2000, 5, 2005}, orders: {9000, 10, 9010}, email: {150, 900, 1050}},
				map[string]int64{"orders": 9010}),
			tail: map[string]int64{saga: 0, orders: 2, email: 800}}
	}

	st := measureStep(base())
	if !st.Holds || len(st.Failed) != 0 {
		t.Fatalf("a quiet step does not hold: %v", st.Failed)
	}
	if st.AcceptedOrders != 10 || st.Commands != 40 || st.P99 != 10 {
		t.Errorf("rates: %v orders/s, %v commands/s, p99 %v", st.AcceptedOrders, st.Commands, st.P99)
	}
	if s := stageOf(t, st, saga); s.Rate != 100 || s.Expected != 100.5 || s.BacklogEnd != 5 {
		t.Errorf("saga: %+v", s)
	}
	if s := stageOf(t, st, email); !s.Quota || !s.Holds {
		t.Errorf("the email group, 900 behind, is not left out as quota-bound: %+v", s)
	}
	if s := stageOf(t, st, StagePostgres); s.Rate != 40 || s.P99Ms > 10 {
		t.Errorf("postgres: %+v", s)
	}
	if s := stageOf(t, st, StageRelay); s.Rate != 401 || s.BacklogEnd != 3 {
		t.Errorf("relay: %+v", s)
	}

	// The orders projector falls behind through the whole last third.
	in := base()
	in.to.lag[orders], in.tail[orders] = 2000, 1500
	st = measureStep(in)
	if st.Holds {
		t.Fatal("a step whose projector lags 2000 records holds")
	}
	if bn, _ := bottleneck(st); bn != orders {
		t.Errorf("bottleneck %q, want %s", bn, orders)
	}
	// A lag seen at the end but not through the tail is noise.
	in = base()
	in.to.lag[orders], in.tail[orders] = 2000, 10
	if st := measureStep(in); !st.Holds {
		t.Errorf("a momentary lag fails the step: %v", st.Failed)
	}

	// The gateway sheds 5 % of its answers.
	in = base()
	in.win.answers.Shed429, in.win.answers.OK = 40, 730
	st = measureStep(in)
	if bn, reason := bottleneck(st); bn != StageGateway || !strings.Contains(reason, "40 shed 429") {
		t.Errorf("bottleneck %q (%s), want the gateway shedding", bn, reason)
	}
	// Client timeouts count against it too.
	in = base()
	in.win.answers.Timeouts = 20
	if bn, _ := bottleneck(measureStep(in)); bn != StageGateway {
		t.Errorf("bottleneck %q with 20 client timeouts, want the gateway", bn)
	}

	// Requests over the p99 bound while the commands themselves are fast.
	in = base()
	for i := range 20 {
		in.win.all[i] = 900
	}
	st = measureStep(in)
	if bn, _ := bottleneck(st); bn != StageGateway || stopReason(st, bn) != "p99" {
		t.Errorf("bottleneck %q, stop %q; want the gateway, p99", bn, stopReason(st, bn))
	}
	// … and when the commands are slow inside the shop: PostgreSQL.
	in.to.commands = cmds(1400, true)
	st = measureStep(in)
	if bn, _ := bottleneck(st); bn != StagePostgres {
		t.Errorf("bottleneck %q with slow commands, want postgres (%v)", bn, st.Failed)
	}

	// The outbox backlog grows: the relay.
	in = base()
	in.to.backlog = 800
	if bn, _ := bottleneck(measureStep(in)); bn != StageRelay {
		t.Errorf("bottleneck %q with the outbox 800 behind, want the relay", bn)
	}

	// The generator falls behind.
	in = base()
	in.late = 100
	if bn, _ := bottleneck(measureStep(in)); bn != StageLoadgen {
		t.Errorf("bottleneck %q with 100 late requests, want loadgen", bn)
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP shop_outbox_backlog rows
# TYPE shop_outbox_backlog gauge
shop_outbox_backlog{outbox="outbox.records"} 42
shop_command_duration_seconds_bucket{command="PlaceOrder",outcome="ok",le="0.001"} 10
shop_command_duration_seconds_bucket{command="PlaceOrder",outcome="ok",le="0.01"} 90
shop_command_duration_seconds_bucket{command="PlaceOrder",outcome="ok",le="+Inf"} 100
shop_command_duration_seconds_count{command="PlaceOrder",outcome="ok"} 100
shop_command_duration_seconds_bucket{command="AddReview",outcome="invalid",le="0.001"} 0
shop_command_duration_seconds_bucket{command="AddReview",outcome="invalid",le="0.01"} 10
shop_command_duration_seconds_bucket{command="AddReview",outcome="invalid",le="+Inf"} 100
shop_command_duration_seconds_count{command="AddReview",outcome="invalid"} 100
shop_command_duration_seconds_bucket{command="PlaceOrder",outcome="overloaded",le="0.001"} 500
shop_command_duration_seconds_bucket{command="PlaceOrder",outcome="overloaded",le="0.01"} 500
shop_command_duration_seconds_bucket{command="PlaceOrder",outcome="overloaded",le="+Inf"} 500
shop_command_duration_seconds_count{command="PlaceOrder",outcome="overloaded"} 500
shop_other{a="x,y}"} 7
`
	backlog, h := parseMetrics(strings.NewReader(text))
	if backlog != 42 {
		t.Errorf("backlog %d, want 42", backlog)
	}
	if h.count != 200 || len(h.bounds) != 3 || h.counts[0] != 10 || h.counts[1] != 100 || h.counts[2] != 200 {
		t.Fatalf("histogram (the shed ones left out): %+v", h)
	}
	// Rank 100 of 200 is the last of the ≤10 ms bucket.
	if q := h.quantile(0.5); math.Abs(q-0.01) > 1e-12 {
		t.Errorf("p50 = %v, want 0.01", q)
	}
	// Rank 55: 45 of the 90 in (1 ms, 10 ms]: half way.
	if q := h.quantile(0.275); math.Abs(q-0.0055) > 1e-12 {
		t.Errorf("p27.5 = %v, want 0.0055", q)
	}
	// In +Inf: the largest finite bound.
	if q := h.quantile(0.99); q != 0.01 {
		t.Errorf("p99 = %v, want 0.01", q)
	}
	if d := h.since(h); d.count != 0 || d.counts[2] != 0 || !math.IsNaN(d.quantile(0.99)) {
		t.Errorf("a histogram since itself: %+v", d)
	}
	if b, h := parseMetrics(strings.NewReader("up 1\n")); b != -1 || h.count != 0 {
		t.Errorf("no shop metrics: backlog %d, %+v", b, h)
	}
}

func TestWindowCountsAnswersApart(t *testing.T) {
	start := time.Now()
	rec := NewRecorder(start)
	at := start.Add(1500 * time.Millisecond)
	for _, a := range []struct {
		route string
		a     answer
	}{
		{"POST /orders", answer{status: 202}},
		{"POST /orders", answer{status: 429, retryAfter: true}},
		{"POST /orders", answer{status: 429}},
		{"POST /orders", answer{status: 503, retryAfter: true}},
		{"GET /products", answer{status: 500}},
		{"GET /products", answer{status: 502}},
		{"GET /products", answer{timeout: true}},
		{"GET /products", answer{}},
		{"POST /customers", answer{status: 409}},
		{"POST /customers", answer{status: 201}},
	} {
		rec.Started(at)
		rec.record(a.route, at, time.Millisecond, a.a)
	}
	w := rec.Window(1, 2)
	want := report.Answers{Sent: 10, OK: 2, Shed429: 2, Shed503: 1, Status500: 1, Other5xx: 1, Timeouts: 1, Transport: 1, Refused: 1, ShedWithoutRetryAfter: 1}
	if w.answers != want {
		t.Errorf("answers %+v\nwant    %+v", w.answers, want)
	}
	if w.acceptedOrders != 1 || w.commands != 2 || w.commandsSent != 6 || w.answered != 10 || len(w.orders) != 4 {
		t.Errorf("window %+v", w)
	}
	if w := rec.Window(0, 1); w.answered != 0 {
		t.Errorf("second 0 has %d answers", w.answered)
	}
}

func TestRampConfigCheck(t *testing.T) {
	ok := RampConfig{Start: 5, Step: 5, Max: 50, StepFor: 10 * time.Second}
	if err := ok.Check(); err != nil || ok.Mix != MixShoppers || ok.P99Bound != DefaultRampP99 || ok.SpikeX != DefaultRampSpikeX || ok.VisibleBound != DefaultVisibleBound {
		t.Fatalf("%v: %+v", err, ok)
	}
	for _, c := range []struct {
		rc   RampConfig
		flag string
	}{
		{RampConfig{Start: 0, Step: 5, Max: 50, StepFor: time.Second}, "--ramp-start"},
		{RampConfig{Start: 5, Step: 0, Max: 50, StepFor: time.Second}, "--ramp-step"},
		{RampConfig{Start: 5, Step: 5, Max: 4, StepFor: time.Second}, "--ramp-max"},
		{RampConfig{Start: 5, Step: 5, Max: 50, StepFor: time.Millisecond}, "--ramp-step-for"},
		{RampConfig{Start: 5, Step: 5, Max: 50, StepFor: time.Second, Mix: "browse"}, "--ramp-mix"},
		{RampConfig{Start: 5, Step: 5, Max: 50, StepFor: time.Second, SpikeX: 0.5}, "--ramp-spike-x"},
	} {
		if err := c.rc.Check(); err == nil || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("%+v: %v, want an error naming %s", c.rc, err, c.flag)
		}
	}
	if rpo := requestsPerOrder(MixShoppers); rpo < 7 || rpo > 8.5 {
		t.Errorf("%v requests per order in the shoppers mix", rpo)
	}
	if requestsPerOrder(MixOrders) != 1 {
		t.Error("the orders mix sends more than its orders")
	}
}
