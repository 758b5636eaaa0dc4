package report

import (
	"fmt"
	"slices"
	"strings"

	"github.com/wcharczuk/go-chart/v2"
)

// Charts of a ramp, against the offered orders/s of each step.
const (
	RampThroughputFile = "ramp-throughput.png"
	RampStagesFile     = "ramp-stages.png"
	RampLatencyFile    = "ramp-latency.png"
)

// rampCharts are the charts of r.Ramp (none without one).
func rampCharts(r *Report) []namedChart {
	if r.Ramp == nil {
		return nil
	}
	return []namedChart{
		{File: RampThroughputFile, Title: "Throughput against offered load", Chart: rampThroughputChart(r.Ramp)},
		{File: RampStagesFile, Title: "Each stage's rate against offered load", Chart: rampStagesChart(r.Ramp)},
		{File: RampLatencyFile, Title: "Latency against offered load", Chart: rampLatencyChart(r.Ramp)},
	}
}

// rampThroughputChart: orders/s offered (the diagonal), accepted, and the
// answers shed or lost per second, at each step.
func rampThroughputChart(rp *Ramp) chart.Chart {
	offered := line{name: "offered orders/s", color: colorTarget, width: 2, dash: []float64{6, 4}}
	accepted := line{name: "accepted orders/s", color: colorBlack, width: 3}
	shed := line{name: "shed (429, 503) /s", color: colorRed, width: 2}
	lost := line{name: "5xx + timeouts /s", color: paletteColor(1), width: 2}
	for _, st := range rp.Steps {
		secs := st.To - st.From
		if secs <= 0 {
			secs = 1
		}
		a := st.Answers
		offered.add(st.Offered, st.Offered)
		accepted.add(st.Offered, st.AcceptedOrders)
		shed.add(st.Offered, float64(a.Shed429+a.Shed503)/secs)
		lost.add(st.Offered, float64(a.Status500+a.Other5xx+a.Timeouts+a.Transport)/secs)
	}
	title := "Throughput against offered load"
	if rp.Sustainable > 0 {
		title += fmt.Sprintf(" (sustainable %s orders/s)", number(rp.Sustainable))
	}
	return buildLineChart(lineSpec{title: title, xName: "offered orders/s", yName: "per second",
		lines: dotted(accepted, shed, lost, offered)})
}

// rampStagesChart: each stage's own rate at each step (commands/s,
// events/s, records/s): the one that stops rising is the bottleneck.
func rampStagesChart(rp *Ramp) chart.Chart {
	var names []string
	for _, st := range rp.Steps {
		for _, s := range st.Stages {
			if s.Name != "loadgen" && !slices.Contains(names, s.Name) {
				names = append(names, s.Name)
			}
		}
	}
	lines := make([]line, len(names))
	for i, n := range names {
		lines[i] = series(i, strings.TrimPrefix(n, "shop."))
		if n == rp.Bottleneck {
			lines[i].name += " (bottleneck)"
			lines[i].width = 4
		}
		for _, st := range rp.Steps {
			for _, s := range st.Stages {
				if s.Name == n {
					lines[i].add(st.Offered, s.Rate)
				}
			}
		}
		if len(lines[i].xs) > 0 {
			lines[i].name += " " + unitOf(rp, n)
		}
	}
	return buildLineChart(lineSpec{title: "Each stage's own rate against offered load", xName: "offered orders/s", yName: "per second", lines: dotted(lines...)})
}

func unitOf(rp *Ramp, name string) string {
	for _, st := range rp.Steps {
		for _, s := range st.Stages {
			if s.Name == name {
				return "(" + strings.TrimSuffix(s.Unit, "/s") + ")"
			}
		}
	}
	return ""
}

// rampLatencyChart: p50, p95 and p99 of every request, and POST /orders'
// p99, at each step, under the bound.
func rampLatencyChart(rp *Ramp) chart.Chart {
	p50 := line{name: "p50", color: paletteColor(2), width: 2}
	p95 := line{name: "p95", color: paletteColor(0), width: 2}
	p99 := line{name: "p99", color: colorBlack, width: 3}
	orders := line{name: "POST /orders p99", color: paletteColor(1), width: 2}
	for _, st := range rp.Steps {
		p50.add(st.Offered, st.P50)
		p95.add(st.Offered, st.P95)
		p99.add(st.Offered, st.P99)
		orders.add(st.Offered, st.OrdersP99)
	}
	lines := dotted(p50, p95, p99, orders)
	if rp.P99BoundMs > 0 {
		lines = append(lines, line{name: fmt.Sprintf("p99 bound (%s ms)", number(rp.P99BoundMs)), ys: []float64{rp.P99BoundMs}, color: colorRed, width: 2, ref: true})
	}
	return buildLineChart(lineSpec{title: "Latency against offered load", xName: "offered orders/s", yName: "ms", lines: lines})
}

// dotted marks every step on lines.
func dotted(lines ...line) []line {
	for i := range lines {
		lines[i].dots = true
	}
	return lines
}
