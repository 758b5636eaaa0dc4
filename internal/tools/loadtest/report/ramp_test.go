package report

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleRamp() *Ramp {
	rp := &Ramp{StartRate: 5, Step: 5, Max: 50, StepFor: 10 * time.Second, P99BoundMs: 500, Mix: "shoppers", RequestsPerOrder: 7.7,
		Sustainable: 15, Stopped: "lag", Bottleneck: "shop.projector.orders.v3", BottleneckReason: "lag grew from 0 to 900 records"}
	for i, rate := range []float64{5, 10, 15, 20} {
		holds := rate < 20
		st := RampStep{Offered: rate, OfferedRPS: rate * 7.7, From: float64(10 * i), To: float64(10*i + 10), AcceptedOrders: rate * 0.98,
			Answers: Answers{Sent: int64(rate * 77), OK: int64(rate * 76), Shed429: int64(i)}, P50: 5 * rate, P95: 10 * rate, P99: 20 * rate, OrdersP99: 25 * rate, Holds: holds,
			Stages: []Stage{
				{Name: "loadgen", Rate: rate * 7.7, Expected: rate * 7.7, Unit: "requests/s", BacklogStart: -1, BacklogEnd: -1, Holds: true},
				{Name: "gateway", Rate: rate * 3, Expected: rate * 3, Unit: "commands/s", BacklogStart: -1, BacklogEnd: -1, Holds: true},
				{Name: "relay", Rate: rate * 10, Expected: rate * 10, Unit: "events/s", Holds: true},
				{Name: "shop.processor.email.v1", Rate: 10, Expected: rate * 2, Unit: "records/s", Holds: true, Quota: true, Reason: "quota-bound"},
				{Name: "shop.projector.orders.v3", Rate: rate * 8, Expected: rate * 9, Unit: "records/s", BacklogEnd: int64(i * 300), Holds: holds, Reason: "lag <grew>"},
			}}
		if !holds {
			st.Failed = []string{"shop.projector.orders.v3: lag grew"}
		}
		rp.Steps = append(rp.Steps, st)
	}
	rp.Spike = &Spike{X: 5, Offered: 75, For: time.Minute, Answers: Answers{Sent: 34000, OK: 30000, Shed429: 4000}, AcceptedOrders: 4000,
		BacklogOrders: 900, Drain: 50 * time.Second, Drained: true, Bound: 72 * time.Second, BoundHolds: true, No500: true, Sheds: true}
	rp.Visible = &Visibility{Offered: 7.5, For: 30 * time.Second, Orders: 225, Seen: 225, P50: 9, P99: 31, Max: 40, PollMs: 2, BoundMs: 25}
	return rp
}

// A ramp adds its three charts against offered load (PNG and inline SVG)
// and its Capacity section to the report.
func TestWriteRamp(t *testing.T) {
	r := sampleReport()
	r.Ramp = sampleRamp()
	dir := outDir(t, "ramp")
	paths, err := Write(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(paths), 2+len(ChartFiles())+3; got != want {
		t.Fatalf("Write returned %d paths, want %d: %v", got, want, paths)
	}
	checkFiles(t, paths)
	for _, f := range []string{RampThroughputFile, RampStagesFile, RampLatencyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)
	if n := strings.Count(page, "<svg"); n != 8 {
		t.Errorf("report.html has %d charts, want 8", n)
	}
	for _, want := range []string{`id="capacity"`, `id="steps"`, "15 orders/s", "projector.orders.v3", "Spike ×5", "1m12s", "Accepted → visible",
		"31.0 ms", "lag &lt;grew&gt;", "Throughput against offered load", "FAILS"} {
		if !strings.Contains(page, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	// Without a ramp, nothing of it.
	r.Ramp = nil
	plain := outDir(t, "plain")
	if _, err := Write(plain, r); err != nil {
		t.Fatal(err)
	}
	if page := readHTML(t, plain); strings.Contains(page, `id="capacity"`) {
		t.Error("a report without a ramp has a Capacity section")
	}
}

// The ramp charts draw a ramp of one step, and one whose steps lack
// stages, without failing.
func TestRampChartEdgeCases(t *testing.T) {
	for name, rp := range map[string]*Ramp{
		"one step":  {Steps: []RampStep{{Offered: 5, AcceptedOrders: 5, P99: 30}}},
		"no steps":  {},
		"no stages": {Steps: []RampStep{{Offered: 5}, {Offered: 10}}},
	} {
		for _, c := range rampCharts(&Report{Ramp: rp}) {
			if _, err := renderPNG(c.Chart); err != nil {
				t.Errorf("%s: %s: %v", name, c.File, err)
			}
			if _, err := renderSVG(c.Chart); err != nil {
				t.Errorf("%s: %s as SVG: %v", name, c.File, err)
			}
		}
	}
}

// A chart with more lines than the palette has colours (the ramp's stages:
// thirteen) draws no two of them alike.
func TestSeriesLinesAreDistinct(t *testing.T) {
	seen := map[string]int{}
	for i := range 3 * len(palette) {
		l := series(i, "x")
		key := fmt.Sprintf("%v %v", l.color, l.dash)
		if j, dup := seen[key]; dup {
			t.Fatalf("lines %d and %d are both drawn %s", j, i, key)
		}
		seen[key] = i
	}
}
