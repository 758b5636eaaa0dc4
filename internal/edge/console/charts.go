package console

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"

	"shopstream/projectors/runner"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"spark":   spark,
	"versus":  versus,
	"chart":   chart,
	"f1":      func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"f0":      func(v float64) string { return fmt.Sprintf("%.0f", v) },
	"dur":     func(d time.Duration) string { return d.Round(100 * time.Millisecond).String() },
	"clock":   func(t time.Time) string { return t.Format("15:04:05") },
	"short":   func(s string) string { return strings.TrimPrefix(s, "shop.") },
	"kind":    groupKind,
	"ints":    func(v []int64) []float64 { return floats(v) },
	"loadcol": loadColumn,
	"pct":     func(a, b float64) float64 { return percent(a, b) },
	"barpct":  func(p int) template.CSS { return template.CSS(fmt.Sprintf("width:%d%%", min(max(p, 0), 100))) },
	"width": func(a, b float64) template.CSS {
		return template.CSS(fmt.Sprintf("width:%.0f%%", math.Min(100, percent(a, b))))
	},
}

func percent(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a * 100 / b
}

func floats(v []int64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// groupKind sorts a group into the pipeline's columns.
func groupKind(group string) string {
	switch {
	case strings.HasPrefix(group, runner.GroupPrefix):
		return "projector"
	case strings.HasPrefix(group, "shop.processor."):
		return "processor"
	}
	return "other"
}

// spark draws values (oldest first) as a small line chart, with its
// highest value as the scale.
func spark(values []int64) template.HTML {
	return chart(floats(values), 0, 160, 32)
}

// chart draws values as a line chart of w×h pixels; a line (a quota, a
// target) is drawn at limit when it is positive.
func chart(values []float64, limit float64, w, h int) template.HTML {
	top := limit
	for _, v := range values {
		top = math.Max(top, v)
	}
	if top <= 0 {
		top = 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`, w, h, w, h)
	y := func(v float64) float64 { return float64(h-2) - v/top*float64(h-4) }
	if limit > 0 {
		fmt.Fprintf(&b, `<line class="limit" x1="0" x2="%d" y1="%.1f" y2="%.1f"/>`, w, y(limit), y(limit))
	}
	if len(values) > 0 {
		step := float64(w) / float64(max(len(values)-1, 1))
		b.WriteString(`<polyline class="line" points="`)
		for i, v := range values {
			fmt.Fprintf(&b, "%.1f,%.1f ", float64(i)*step, y(v))
		}
		b.WriteString(`"/>`)
	}
	fmt.Fprintf(&b, `<text x="2" y="10">%.0f</text></svg>`, top)
	return template.HTML(b.String())
}

// versus draws achieved against target (one value a second each) on one
// scale: the profile asked as a dashed line, what was achieved as a line.
func versus(target, achieved []float64, w, h int) template.HTML {
	top := 1.0
	for _, v := range slices.Concat(target, achieved) {
		top = math.Max(top, v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`, w, h, w, h)
	for _, series := range []struct {
		class  string
		values []float64
	}{{"limit", target}, {"line", achieved}} {
		if len(series.values) == 0 {
			continue
		}
		step := float64(w) / float64(max(len(series.values)-1, 1))
		fmt.Fprintf(&b, `<polyline class="%s" fill="none" points="`, series.class)
		for i, v := range series.values {
			fmt.Fprintf(&b, "%.1f,%.1f ", float64(i)*step, float64(h-2)-v/top*float64(h-4))
		}
		b.WriteString(`"/>`)
	}
	fmt.Fprintf(&b, `<text x="2" y="10">%.0f</text></svg>`, top)
	return template.HTML(b.String())
}

// loadColumn is one figure of every second of a load test.
func loadColumn(secs []LoadSecond, what string) []float64 {
	out := make([]float64, len(secs))
	for i, s := range secs {
		switch what {
		case "sent":
			out[i] = float64(s.Sent)
		case "ok":
			out[i] = float64(s.OK)
		case "shed":
			out[i] = float64(s.Shed)
		case "target":
			out[i] = s.Target
		case "p95":
			out[i] = s.P95
		}
	}
	return out
}
