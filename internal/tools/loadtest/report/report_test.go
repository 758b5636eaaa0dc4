package report

import (
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var routeList = []string{
	"GET /products",
	"GET /products/{id}",
	"POST /orders",
	"GET /orders/{id}",
	"POST /orders/{id}/cancel",
}

// sampleReport is a realistic blackfriday run: 60 s at 40 req/s with a ×5
// spike from t=20 to t=40, the shop shedding during the spike, lag rising
// then draining, emails held around a quota of 5/s, three products selling
// out, and invariant I3 violated.
func sampleReport() *Report {
	r := &Report{
		Profile: Profile{
			Name: "blackfriday", BaseRPS: 40, SpikeX: 5,
			SpikeAt: 20 * time.Second, SpikeFor: 20 * time.Second,
			Duration: 60 * time.Second, Seed: 42,
		},
		Target:     "http://localhost:8080",
		Started:    time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC),
		Machine:    Machine{Hostname: "ci-runner-7", OS: "linux", Arch: "amd64", CPUs: 8, GoVersion: "go1.26.8"},
		EmailQuota: 5,
		Drain:      Drain{Elapsed: 14*time.Second + 250*time.Millisecond, Drained: true, Timeout: 2 * time.Minute},
	}
	weights := []float64{0.4, 0.25, 0.2, 0.1, 0.05}
	sums := make([]RouteSummary, len(routeList))
	for i, name := range routeList {
		sums[i].Route = name
	}
	for t := 0; t < 60; t++ {
		spike := t >= 20 && t < 40
		target := 40.0
		if spike {
			target = 200
		}
		sec := Second{T: t, TargetRPS: target, Routes: map[string]RouteSecond{}}
		for i, name := range routeList {
			count := int64(target*weights[i] + float64((t*7+i*3)%5) - 2)
			var shed, errs int64
			lat := 4.0 + float64(i)*2
			if spike {
				shed = count / 4
				lat *= 6
				if i == 2 && t == 30 {
					errs = 2
				}
			}
			if t == 25 && i == 4 {
				count = 0 // a route with no request in one second
			}
			sec.Routes[name] = RouteSecond{
				Count: count, Errors: errs, Shed: shed,
				P50: lat, P95: lat * 2.5, P99: lat * 4,
			}
			s := &sums[i]
			s.Count += count
			s.Shed += shed
			s.Errors += errs
			s.OK += count - shed - errs
			s.P50, s.P95, s.P99 = lat, lat*2.5, lat*4
			s.Max = math.Max(s.Max, lat*7)
			r.Totals.Requests += count
			r.Totals.Shed += shed
			r.Totals.Errors += errs
			r.Totals.OK += count - shed - errs
		}
		r.Seconds = append(r.Seconds, sec)
	}
	r.Routes = sums
	r.Totals.AchievedRPS = float64(r.Totals.Requests) / 60
	r.Totals.Late = 3
	r.Totals.OrdersAccepted = 2100
	r.Totals.OrdersConfirmed = 1890
	r.Totals.OrdersCancelled = 210
	r.Totals.EmailsSent = 1890

	groups := []string{"shop.projector.products.v2", "shop.saga", "shop.email", "shop.projector.orders.v1"}
	for t := 0.0; t <= 75; t += 1 {
		s := LagSample{T: t, Groups: map[string]int64{}}
		for i, g := range groups {
			var lag float64
			switch {
			case t < 20:
				lag = 5 + float64(i)
			case t < 40:
				lag = (t - 19) * float64(40+30*i)
			default:
				lag = math.Max(0, 20*float64(40+30*i)-(t-40)*float64(60+25*i))
			}
			s.Groups[g] = int64(lag)
		}
		r.Lag = append(r.Lag, s)
	}

	for t := 0; t < 75; t++ {
		sent := 3 + t%3
		if t >= 22 && t < 70 {
			sent = 5
		}
		if t == 33 {
			sent = 7 // one second over quota
		}
		r.Emails = append(r.Emails, EmailSample{T: t, Sent: sent})
	}

	for i, title := range []string{"Console & controller bundle", "4K TV <55\">", "Noise-cancelling headphones"} {
		st := StockSeries{ProductID: fmt.Sprintf("p-%03d", i+1), Title: title}
		stock := int64(120 - 30*i)
		for t := 0.0; t <= 70; t += 2 {
			st.Points = append(st.Points, StockPoint{T: t, Stock: stock})
			drop := int64(1)
			if t >= 20 && t < 40 {
				drop = int64(6 + 2*i)
			}
			stock = max(0, stock-drop)
		}
		r.Stock = append(r.Stock, st)
	}

	names := []string{
		"stock never negative", "no order confirmed twice", "paid orders are invoiced",
		"emails within quota", "cancelled orders restock", "projections match the log",
	}
	for i, n := range names {
		inv := Invariant{
			ID: fmt.Sprintf("I%d", i+1), Name: n, Holds: true, Checked: 1000 + 37*i,
			Detail: "checked every order against the event log",
		}
		if i == 2 {
			inv.Holds = false
			inv.Detail = "2 confirmed orders have no invoice email"
			inv.Violations = []string{"order 9f1c… confirmed, no invoice", "order 77ab… confirmed, no invoice"}
		}
		r.Invariants = append(r.Invariants, inv)
	}
	return r
}

// outDir is t.TempDir(), or $SHOP_REPORT_OUT (kept) when set, to look at
// the output: SHOP_REPORT_OUT=/tmp/report-sample go test -run TestWrite .
func outDir(t *testing.T, sub string) string {
	if d := os.Getenv("SHOP_REPORT_OUT"); d != "" {
		return filepath.Join(d, sub)
	}
	return t.TempDir()
}

func TestWrite(t *testing.T) {
	r := sampleReport()
	dir := outDir(t, "full")
	paths, err := Write(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(paths), 2+len(ChartFiles()); got != want {
		t.Fatalf("Write returned %d paths, want %d: %v", got, want, paths)
	}
	checkFiles(t, paths)

	// report.json decodes back into the same report.
	data, err := os.ReadFile(filepath.Join(dir, JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if back.Profile != r.Profile || back.Totals != r.Totals || back.Drain != r.Drain ||
		back.Machine != r.Machine || !back.Started.Equal(r.Started) || back.EmailQuota != r.EmailQuota {
		t.Errorf("report.json does not round-trip:\n got %+v\nwant %+v", back.Profile, r.Profile)
	}
	if len(back.Seconds) != 60 || len(back.Routes) != 5 || len(back.Lag) != len(r.Lag) ||
		len(back.Emails) != len(r.Emails) || len(back.Stock) != 3 || len(back.Invariants) != 6 {
		t.Errorf("report.json lengths: %d seconds, %d routes, %d lag, %d emails, %d stock, %d invariants",
			len(back.Seconds), len(back.Routes), len(back.Lag), len(back.Emails), len(back.Stock), len(back.Invariants))
	}
	if got, want := back.Seconds[30].Routes["POST /orders"], r.Seconds[30].Routes["POST /orders"]; got != want {
		t.Errorf("seconds[30] POST /orders = %+v, want %+v", got, want)
	}
	if back.Invariants[2].Holds || len(back.Invariants[2].Violations) != 2 {
		t.Errorf("invariant I3 = %+v", back.Invariants[2])
	}

	page := readHTML(t, dir)
	verdict := regexp.MustCompile(`(?s)<div id="verdict"[^>]*>(.*?)</div>`).FindStringSubmatch(page)
	if verdict == nil {
		t.Fatal("report.html has no verdict banner")
	}
	if !strings.Contains(verdict[0], "fail") || !strings.Contains(verdict[1], "I3") {
		t.Errorf("verdict = %q, want a failing verdict naming I3", verdict[0])
	}
	for _, want := range []string{
		"blackfriday", "2026-11-27", "POST /orders/{id}/cancel", "ci-runner-7",
		"order 9f1c… confirmed, no invoice", "FAIL", "PASS",
		// Product titles with markup characters are escaped, in tables and in SVG text.
		"4K TV &lt;55&#34;&gt;", "Console &amp; controller bundle",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if strings.Contains(page, "4K TV <55") {
		t.Error("report.html has an unescaped product title")
	}
}

func TestWriteEmpty(t *testing.T) {
	r := &Report{Profile: Profile{Name: "steady", BaseRPS: 10, Duration: time.Minute}}
	dir := outDir(t, "empty")
	paths, err := Write(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	pngs := 0
	for _, p := range paths {
		if strings.HasSuffix(p, ".png") {
			pngs++
		}
	}
	if pngs != 5 {
		t.Errorf("wrote %d PNGs, want 5: %v", pngs, paths)
	}
	checkFiles(t, paths)
	page := readHTML(t, dir)
	if !strings.Contains(page, "no data") {
		t.Error("report.html does not say the charts have no data")
	}
	if !strings.Contains(page, "No invariant was checked") {
		t.Error("report.html does not say no invariant was checked")
	}
}

// TestChartEdgeCases renders each chart from awkward data: one sample,
// all zeros, a route with a single second, emails without a quota, a lag
// group seen once.
func TestChartEdgeCases(t *testing.T) {
	cases := map[string]*Report{
		"single second": {
			Seconds: []Second{{T: 0, TargetRPS: 10, Routes: map[string]RouteSecond{"GET /x": {Count: 9, P50: 1, P95: 2, P99: 3}}}},
			Lag:     []LagSample{{T: 0.5, Groups: map[string]int64{"shop.saga": 3}}},
			Emails:  []EmailSample{{T: 0, Sent: 1}},
			Stock:   []StockSeries{{ProductID: "p-1", Points: []StockPoint{{T: 0, Stock: 4}}}},
		},
		"all zero": {
			Seconds:    []Second{{T: 0, Routes: map[string]RouteSecond{"GET /x": {}}}, {T: 1, Routes: map[string]RouteSecond{"GET /x": {}}}},
			Lag:        []LagSample{{T: 0, Groups: map[string]int64{"shop.saga": 0}}, {T: 1, Groups: map[string]int64{"shop.saga": 0}}},
			Emails:     []EmailSample{{T: 0}, {T: 1}},
			EmailQuota: 5,
			Stock:      []StockSeries{{Title: "sold out", Points: []StockPoint{{T: 0}, {T: 5}}}},
		},
		"quota without emails": {EmailQuota: 5, Stock: []StockSeries{{Title: "no points"}}},
		"negative stock and NaN": {
			Seconds: []Second{
				{T: 3, TargetRPS: math.NaN(), Routes: map[string]RouteSecond{"GET /x": {Count: 1, P99: math.Inf(1)}}},
				{T: 4, TargetRPS: 5, Routes: map[string]RouteSecond{"GET /x": {Count: 2, P95: math.NaN()}}},
			},
			Stock: []StockSeries{{Title: "oversold", Points: []StockPoint{{T: 0, Stock: 2}, {T: 1, Stock: -3}}}},
		},
		"many series": manySeries(),
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			keep := os.Getenv("SHOP_REPORT_OUT")
			for _, c := range buildCharts(r) {
				png, err := renderPNG(c.Chart)
				if err != nil {
					t.Errorf("%s as PNG: %v", c.File, err)
				}
				if keep != "" {
					dir := filepath.Join(keep, "edge", strings.ReplaceAll(name, " ", "-"))
					if err := os.MkdirAll(dir, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(dir, c.File), png, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				svg, err := renderSVG(c.Chart)
				if err != nil {
					t.Errorf("%s as SVG: %v", c.File, err)
				}
				if !strings.HasPrefix(svg, "<svg") || !strings.HasSuffix(svg, "</svg>") {
					t.Errorf("%s: SVG is not one <svg> element: %.60q…", c.File, svg)
				}
			}
		})
	}
}

func manySeries() *Report {
	r := &Report{}
	for t := 0; t < 10; t++ {
		s := LagSample{T: float64(t), Groups: map[string]int64{}}
		for g := 0; g < 40; g++ {
			s.Groups[fmt.Sprintf("shop.group.with.a.rather.long.name.%02d", g)] = int64(t * g)
		}
		r.Lag = append(r.Lag, s)
	}
	return r
}

// checkFiles checks every written file exists and every PNG is a real,
// wide enough image.
func checkFiles(t *testing.T, paths []string) {
	t.Helper()
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if st.Size() == 0 {
			t.Errorf("%s is empty", p)
		}
		if filepath.Ext(p) != ".png" {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if w := img.Bounds().Dx(); w < 600 {
			t.Errorf("%s is %d px wide, want ≥ 600", p, w)
		}
	}
}

// readHTML reads report.html and checks what every page must be: five
// inline SVG charts and nothing that needs a network or a script.
func readHTML(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)
	if n := strings.Count(page, "<svg"); n != 5 {
		t.Errorf("report.html has %d <svg elements, want 5", n)
	}
	if n := strings.Count(page, "</svg>"); n != 5 {
		t.Errorf("report.html has %d </svg>, want 5", n)
	}
	lower := strings.ToLower(page)
	for _, bad := range []string{"<script", "<link", "@import", "url(", "<?xml", "<iframe", "<img"} {
		if strings.Contains(lower, bad) {
			t.Errorf("report.html contains %q", bad)
		}
	}
	if m := regexp.MustCompile(`(?i)\b(src|href|xlink:href|action)\s*=\s*["']?\s*(https?:)?//`).FindString(page); m != "" {
		t.Errorf("report.html references the network: %q", m)
	}
	return page
}
