package loadtest

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"shopstream/internal/tools/loadtest/report"
)

// Stage names of a ramp step besides the consumer groups, in pipeline
// order: the load generator itself, the gateway (HTTP), PostgreSQL (the
// commands' transactions, outbox rows included), the outbox relay.
const (
	StageLoadgen  = "loadgen"
	StageGateway  = "gateway"
	StagePostgres = "postgres"
	StageRelay    = "relay"
)

// What a step tolerates before a stage counts as not keeping up.
const (
	// lossShare: sheds (429, 503), 5xx and client timeouts, of the
	// commands answered.
	lossShare = 0.01
	// lateShare: requests the generator started over a second late.
	lateShare = 0.01
	// sentShare: the generator must send this share of the offered rate.
	sentShare = 0.9
	// lagSlackMin and lagSlackSecs: a group (or the outbox) keeps up while
	// its backlog stays within max(lagSlackMin, lagSlackSecs × its intake
	// per second) to the end of the step.
	lagSlackMin  = 50
	lagSlackSecs = 1.0
)

// stepInput is what was measured during one step.
type stepInput struct {
	offered    float64 // orders/s
	offeredRPS float64 // requests/s of the mix
	secs       float64 // the step's length
	win        window  // the answers to its requests
	late       int64   // requests started late during it
	from, to   stageSnap
	// tail is each group's smallest lag over the last third of the step
	// (the 1 s samples): a lag must hold through it to count.
	tail       map[string]int64
	p99BoundMs float64
}

// measureStep turns a step's measurements into each stage's rate and
// verdict, and says whether the step held.
func measureStep(in stepInput) report.RampStep {
	secs := math.Max(in.secs, 1e-3)
	// The stages' counters are read before and after the step: their
	// rates are over the time between the two readings.
	snapSecs := secs
	if d := in.to.at.Sub(in.from.at).Seconds(); !in.from.at.IsZero() && d > 0 {
		snapSecs = d
	}
	w := in.win
	st := report.RampStep{
		Offered: in.offered, OfferedRPS: in.offeredRPS, Answers: w.answers,
		AcceptedOrders: float64(w.acceptedOrders) / secs, Commands: float64(w.commands) / secs,
		Answered: float64(w.answered) / secs,
		P50:      percentile(w.all, 50), P95: percentile(w.all, 95), P99: percentile(w.all, 99), OrdersP99: percentile(w.orders, 99),
	}
	st.Answers.Late = in.late

	// The generator: it must send what is offered, on time.
	gen := report.Stage{Name: StageLoadgen, Rate: float64(w.answers.Sent) / secs, Expected: in.offeredRPS, Unit: "requests/s",
		BacklogStart: -1, BacklogEnd: -1, Holds: true}
	switch {
	case w.answers.Sent > 0 && float64(in.late) > lateShare*float64(w.answers.Sent):
		gen.Holds, gen.Reason = false, fmt.Sprintf("%d of %d requests started over a second late: the client machine, not the shop, fell behind", in.late, w.answers.Sent)
	case gen.Rate < sentShare*in.offeredRPS:
		gen.Holds, gen.Reason = false, fmt.Sprintf("sent %.1f requests/s of %.1f offered", gen.Rate, in.offeredRPS)
	}

	// PostgreSQL: the commands' own handling time, from the shop's
	// histogram (the transaction that writes the events and the outbox).
	pg := report.Stage{Name: StagePostgres, Unit: "commands/s", BacklogStart: -1, BacklogEnd: -1, Holds: true,
		Expected: float64(w.commandsSent) / secs}
	if h := in.to.commands.since(in.from.commands); h.count > 0 {
		pg.Rate = h.count / snapSecs
		pg.P99Ms = h.quantile(0.99) * 1000
		if pg.P99Ms > in.p99BoundMs {
			pg.Holds, pg.Reason = false, fmt.Sprintf("commands took %.0f ms at p99 inside the shop (bound %.0f ms)", pg.P99Ms, in.p99BoundMs)
		}
	} else {
		pg.Reason = "no shop_command_duration_seconds in GET /metrics: not measured"
	}

	// The gateway: what it accepted, what it shed or failed, its p99.
	gw := report.Stage{Name: StageGateway, Rate: st.Commands, Expected: float64(w.commandsSent) / secs, Unit: "commands/s",
		BacklogStart: -1, BacklogEnd: -1, Holds: true, P99Ms: st.P99}
	a := w.answers
	lost := a.Shed429 + a.Shed503 + a.Status500 + a.Other5xx + a.Timeouts + a.Transport
	switch {
	case w.answered > 0 && float64(lost) > lossShare*float64(w.answered):
		gw.Holds, gw.Reason = false, fmt.Sprintf("%d of %d answers lost: %d shed 429, %d 503, %d 500, %d other 5xx, %d client timeouts, %d transport errors",
			lost, w.answered, a.Shed429, a.Shed503, a.Status500, a.Other5xx, a.Timeouts, a.Transport)
	case st.P99 > in.p99BoundMs:
		gw.Holds, gw.Reason = false, fmt.Sprintf("p99 %.0f ms over the bound of %.0f ms", st.P99, in.p99BoundMs)
	}

	// The relay: events reach the log (every topic's end offsets) while
	// the outbox backlog stays flat.
	relay := report.Stage{Name: StageRelay, Unit: "events/s", BacklogStart: in.from.backlog, BacklogEnd: in.to.backlog, Holds: true}
	if in.from.lagOK && in.to.lagOK {
		var published int64
		for topic, end := range in.to.ends {
			published += end - in.from.ends[topic]
		}
		relay.Rate = float64(published) / snapSecs
	}
	relay.Expected = relay.Rate
	if in.from.backlog >= 0 && in.to.backlog >= 0 {
		relay.Expected += float64(in.to.backlog-in.from.backlog) / snapSecs
		if slack := slack(relay.Expected); float64(in.to.backlog) > slack && in.to.backlog > in.from.backlog {
			relay.Holds = false
			relay.Reason = fmt.Sprintf("outbox backlog grew from %d to %d rows: the relay publishes less than PostgreSQL commits", in.from.backlog, in.to.backlog)
			relay.Severity = float64(in.to.backlog-in.from.backlog) / snapSecs / math.Max(relay.Expected, 1)
		}
	} else {
		relay.Reason = "no shop_outbox_backlog in GET /metrics: judged by nothing"
	}

	st.Stages = []report.Stage{gen, pg, gw, relay}
	if in.from.lagOK && in.to.lagOK {
		for _, g := range slices.Sorted(maps.Keys(in.to.committed)) {
			st.Stages = append(st.Stages, groupStage(g, in, snapSecs))
		}
	}
	st.Holds = true
	for _, s := range st.Stages {
		if !s.Holds && !s.Quota {
			st.Holds = false
			st.Failed = append(st.Failed, s.Name+": "+s.Reason)
		}
	}
	return st
}

// groupStage is one consumer group over a step: the records it committed
// per second against those that reached its topics, and its lag.
func groupStage(g string, in stepInput, secs float64) report.Stage {
	s := report.Stage{Name: g, Unit: "records/s", Holds: true,
		Rate:         float64(in.to.committed[g]-in.from.committed[g]) / secs,
		BacklogStart: -1, BacklogEnd: in.to.lag[g]}
	if _, ok := in.from.committed[g]; ok {
		s.BacklogStart = in.from.lag[g]
		s.Expected = float64(in.to.intake[g]-in.from.intake[g]) / secs
	} else { // it joined during the step
		s.Rate, s.Expected = 0, 0
	}
	if quotaBound(g) {
		s.Quota = true
		s.Reason = "quota-bound on purpose (--email-rate): left out of the bottleneck"
		return s
	}
	end := s.BacklogEnd
	if t, ok := in.tail[g]; ok {
		end = min(end, t) // it must lag through the last third of the step
	}
	if float64(end) > slack(s.Expected) {
		s.Holds = false
		growth := float64(s.BacklogEnd-max(s.BacklogStart, 0)) / secs
		s.Severity = math.Max(growth, 0) / math.Max(s.Expected, 1)
		if s.BacklogEnd > s.BacklogStart {
			s.Reason = fmt.Sprintf("lag grew from %d to %d records: %.0f records/s committed of %.0f/s arriving", max(s.BacklogStart, 0), s.BacklogEnd, s.Rate, s.Expected)
		} else {
			s.Reason = fmt.Sprintf("lag of %d records did not drain within the step (%.0f records/s committed of %.0f/s arriving)", s.BacklogEnd, s.Rate, s.Expected)
		}
	}
	return s
}

// slack is how much backlog a stage taking in perSec may hold and still
// count as keeping up.
func slack(perSec float64) float64 {
	return math.Max(lagSlackMin, lagSlackSecs*perSec)
}

// quotaBound says whether group is rate-limited on purpose: the email
// group sends at most --email-rate emails/s whatever the load.
func quotaBound(group string) bool {
	return strings.Contains(group, ".email.")
}

// bottleneck names the stage of a failed step that gave way first: the
// first failing stage in pipeline order (the generator, PostgreSQL, the
// gateway, the relay), else the consumer group whose lag grew fastest for
// what reached it. Quota-bound groups are left out. "" when every stage
// held.
func bottleneck(st report.RampStep) (name, reason string) {
	order := map[string]int{StageLoadgen: 0, StagePostgres: 1, StageGateway: 2, StageRelay: 3}
	var failed []report.Stage
	for _, s := range st.Stages {
		if !s.Holds && !s.Quota {
			failed = append(failed, s)
		}
	}
	if len(failed) == 0 {
		return "", ""
	}
	slices.SortStableFunc(failed, func(a, b report.Stage) int {
		ra, aok := order[a.Name]
		rb, bok := order[b.Name]
		switch {
		case aok && bok:
			return cmp.Compare(ra, rb)
		case aok:
			return -1
		case bok:
			return 1
		}
		return cmp.Compare(b.Severity, a.Severity)
	})
	return failed[0].Name, failed[0].Reason
}

// stopReason is the criterion a failed step broke, named after its
// bottleneck: "p99" (the gateway or PostgreSQL too slow), "lag" (the
// relay or a consumer group behind), "shed" (the gateway shed, failed or
// timed out), "loadgen" (the generator fell behind).
func stopReason(st report.RampStep, bottleneck string) string {
	switch bottleneck {
	case StageLoadgen:
		return "loadgen"
	case StagePostgres:
		return "p99"
	case StageGateway:
		for _, s := range st.Stages {
			if s.Name == StageGateway && strings.HasPrefix(s.Reason, "p99") {
				return "p99"
			}
		}
		return "shed"
	case "":
		return ""
	}
	return "lag"
}

// nextRate is the step controller: after a step at cur orders/s that held
// (or not), the rate of the next step, or done with why the ramp ends
// ("max": cur held and the next step would pass max; "failed": cur did
// not hold).
func nextRate(cur, step, maxRate float64, held bool) (next float64, done bool, why string) {
	if !held {
		return 0, true, "failed"
	}
	next = cur + step
	if step <= 0 || next > maxRate*(1+1e-9) {
		return 0, true, "max"
	}
	return next, false, ""
}

// drainBound is how long a backlog of orders may take to drain at a
// capacity of orders/s: 1.2 × backlog ÷ capacity (0 without a capacity).
func drainBound(backlog int64, capacity float64) time.Duration {
	if capacity <= 0 {
		return 0
	}
	return time.Duration(1.2 * float64(backlog) / capacity * float64(time.Second))
}

// requestsPerOrder is how many requests the mix sends for each order.
func requestsPerOrder(mix string) float64 {
	if mix == MixOrders {
		return 1
	}
	total, orders := 0, 0
	for _, a := range Actions {
		total += a.Weight
		if a.Name == "order" {
			orders = a.Weight
		}
	}
	return float64(total) / float64(orders)
}
