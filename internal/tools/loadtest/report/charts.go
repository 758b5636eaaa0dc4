package report

import (
	"bytes"
	"fmt"
	"html"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"
)

// Chart geometry, the same for the PNG files and the inline SVG.
const (
	chartWidth  = 1000
	chartHeight = 400

	legendFontSize   = 9.0
	legendTextHeight = 12 // pixels of a 9 pt line at go-chart's 92 DPI
	legendLineLen    = 24
	legendGap        = 6  // between the sample line and its label
	legendRowHeight  = 16 // pixels from one legend row to the next
	legendPad        = 8  // inside the legend box
	legendMargin     = 14 // between the plot (and its y axis) and the legend
	legendMaxLabel   = 40 // longer labels are cut with an ellipsis
	legendMinPadding = 20 // right padding of a chart without a legend
)

// Colours. palette is for "one line per thing" series; the named colours
// are kept for lines that mean something (target, shed, quota, overall).
var (
	palette = []drawing.Color{
		hex("1f77b4"), // blue
		hex("ff7f0e"), // orange
		hex("2ca02c"), // green
		hex("9467bd"), // purple
		hex("8c564b"), // brown
		hex("e377c2"), // pink
		hex("17becf"), // cyan
		hex("bcbd22"), // olive
		hex("7f7f7f"), // grey
		hex("393b79"), // indigo
	}
	colorRed    = hex("d62728")
	colorBlack  = hex("222222")
	colorGrey   = hex("aaaaaa")
	colorTarget = hex("9e9e9e")
	colorGrid   = hex("e6e6e6")
)

func hex(s string) drawing.Color { return drawing.ColorFromHex(s) }

func paletteColor(i int) drawing.Color { return palette[i%len(palette)] }

// paletteDashes are the strokes of "one line per thing" series once the
// palette's colours have all been used: solid, then dashed, then dotted.
var paletteDashes = [][]float64{nil, {8, 4}, {2, 3}}

// series is the i-th "one line per thing" line of a chart: the palette's
// colours in turn, solid, then again dashed, then dotted, so that no two
// lines of a chart with up to three times the palette's length look alike.
func series(i int, name string) line {
	return line{name: name, color: paletteColor(i), width: 2, dash: paletteDashes[i/len(palette)%len(paletteDashes)]}
}

// namedChart is one chart of the report: built once, rendered as a PNG file
// and as inline SVG.
type namedChart struct {
	File  string // PNG file name, e.g. "throughput.png"
	Title string
	Chart chart.Chart
}

// buildCharts builds the five charts of r, in report order, and those of
// its ramp if it has one.
func buildCharts(r *Report) []namedChart {
	return append([]namedChart{
		{File: "throughput.png", Title: "Throughput", Chart: throughputChart(r)},
		{File: "latency.png", Title: "Latency", Chart: latencyChart(r)},
		{File: "lag.png", Title: "Consumer lag", Chart: lagChart(r)},
		{File: "emails.png", Title: "Invoice emails", Chart: emailsChart(r)},
		{File: "stock.png", Title: "Stock of the hottest products", Chart: stockChart(r)},
	}, rampCharts(r)...)
}

// line is one series of a line chart, before it becomes a go-chart series.
type line struct {
	name  string
	xs    []float64
	ys    []float64
	color drawing.Color
	width float64   // 0: 2; whole pixels, as the SVG renderer truncates widths
	dash  []float64 // nil: solid
	fill  bool      // fill the area under the line (translucent)
	dots  bool      // mark every point (a ramp's steps)
	// ref lines are horizontal reference lines at ys[0]; they span the x
	// range of the data lines and do not count as data.
	ref bool
}

func (l *line) add(x, y float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) || math.IsNaN(y) || math.IsInf(y, 0) {
		return
	}
	l.xs = append(l.xs, x)
	l.ys = append(l.ys, y)
}

// lineSpec is what a chart function hands to buildLineChart.
type lineSpec struct {
	title string
	xName string
	yName string
	lines []line
}

// throughputChart: requests/s per route, all routes together, the target
// rate (dashed) and the 429s per second.
func throughputChart(r *Report) chart.Chart {
	routes := routeNames(r)
	perRoute := make([]line, len(routes))
	for i, name := range routes {
		perRoute[i] = series(i, name)
	}
	// The target is drawn last, dashed in a lighter colour, so that it shows
	// on top of the total when the shop keeps up.
	total := line{name: "all routes", color: colorBlack, width: 3}
	target := line{name: "target rate", color: colorTarget, width: 2, dash: []float64{6, 4}}
	shed := line{name: "shed (429, 503) /s", color: colorRed, width: 2}
	for _, s := range r.Seconds {
		x := float64(s.T)
		var sum, shedSum int64
		for i, name := range routes {
			rs := s.Routes[name]
			perRoute[i].add(x, float64(rs.Count))
			sum += rs.Count
			shedSum += rs.Shed
		}
		total.add(x, float64(sum))
		target.add(x, s.TargetRPS)
		shed.add(x, float64(shedSum))
	}
	lines := append(perRoute, shed, total, target)
	return buildLineChart(lineSpec{
		title: "Throughput (requests per second)",
		xName: "seconds since start",
		yName: "requests/s",
		lines: lines,
	})
}

// latencyChart: p95 of each route, and the worst p99 over all routes.
func latencyChart(r *Report) chart.Chart {
	routes := routeNames(r)
	lines := make([]line, 0, len(routes)+1)
	for i, name := range routes {
		l := series(i, name+" p95")
		for _, s := range r.Seconds {
			if rs, ok := s.Routes[name]; ok && rs.Count > 0 {
				l.add(float64(s.T), rs.P95)
			}
		}
		lines = append(lines, l)
	}
	p99 := line{name: "p99 (slowest route)", color: colorBlack, width: 3}
	for _, s := range r.Seconds {
		worst, any := 0.0, false
		for _, rs := range s.Routes {
			if rs.Count > 0 && !math.IsNaN(rs.P99) {
				worst, any = math.Max(worst, rs.P99), true
			}
		}
		if any {
			p99.add(float64(s.T), worst)
		}
	}
	lines = append(lines, p99)
	return buildLineChart(lineSpec{
		title: "Latency (p95 per route, worst p99)",
		xName: "seconds since start",
		yName: "ms",
		lines: lines,
	})
}

// lagChart: the lag of each consumer group.
func lagChart(r *Report) chart.Chart {
	groups := map[string]bool{}
	for _, s := range r.Lag {
		for g := range s.Groups {
			groups[g] = true
		}
	}
	names := slices.Sorted(maps.Keys(groups))
	lines := make([]line, len(names))
	for i, g := range names {
		lines[i] = series(i, strings.TrimPrefix(g, "shop."))
		for _, s := range r.Lag {
			if v, ok := s.Groups[g]; ok {
				lines[i].add(s.T, float64(v))
			}
		}
	}
	return buildLineChart(lineSpec{
		title: "Consumer lag per group",
		xName: "seconds since start",
		yName: "records behind",
		lines: lines,
	})
}

// emailsChart: invoice emails sent per second against the quota.
func emailsChart(r *Report) chart.Chart {
	sent := line{name: "emails sent /s", color: paletteColor(0), width: 2, fill: true}
	for _, e := range r.Emails {
		sent.add(float64(e.T), float64(e.Sent))
	}
	lines := []line{sent}
	if r.EmailQuota > 0 {
		lines = append(lines, line{
			name:  fmt.Sprintf("quota (%d/s)", r.EmailQuota),
			ys:    []float64{float64(r.EmailQuota)},
			color: colorRed,
			width: 3,
			ref:   true,
		})
	}
	return buildLineChart(lineSpec{
		title: "Invoice emails per second",
		xName: "seconds since start",
		yName: "emails/s",
		lines: lines,
	})
}

// stockChart: the stock of each followed product.
func stockChart(r *Report) chart.Chart {
	lines := make([]line, len(r.Stock))
	for i, st := range r.Stock {
		name := st.Title
		if name == "" {
			name = st.ProductID
		}
		lines[i] = series(i, name)
		for _, p := range st.Points {
			lines[i].add(p.T, float64(p.Stock))
		}
	}
	return buildLineChart(lineSpec{
		title: "Stock of the hottest products",
		xName: "seconds since start",
		yName: "units in stock",
		lines: lines,
	})
}

// buildLineChart turns spec into a chart that go-chart can always render:
// explicit axis ranges and ticks (so an all-zero series or a single sample
// never gives an empty range), dots where a line has a single point, a
// legend to the right of the plot, and a "no data" placeholder when there
// is nothing to draw.
func buildLineChart(spec lineSpec) chart.Chart {
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := 0.0, 0.0 // every figure of a report is naturally ≥ 0
	points := 0
	for _, l := range spec.lines {
		if l.ref {
			continue
		}
		for i := range l.xs {
			xmin, xmax = math.Min(xmin, l.xs[i]), math.Max(xmax, l.xs[i])
			ymin, ymax = math.Min(ymin, l.ys[i]), math.Max(ymax, l.ys[i])
			points++
		}
	}
	if points == 0 {
		return placeholderChart(spec)
	}
	for _, l := range spec.lines {
		if l.ref && len(l.ys) > 0 {
			ymin, ymax = math.Min(ymin, l.ys[0]), math.Max(ymax, l.ys[0])
		}
	}
	if xmax == xmin { // a single instant: give it some room
		xmin, xmax = math.Max(0, xmin-1), xmin+1
		if xmin == xmax { // negative x
			xmin = xmax - 2
		}
	}
	if ymax == ymin {
		ymax = ymin + 1
	} else {
		ymax += (ymax - ymin) * 0.04 // head room for the top line
	}

	var series []chart.Series
	var legend []legendItem
	for _, l := range spec.lines {
		xs, ys := l.xs, l.ys
		if l.ref {
			if len(l.ys) == 0 {
				continue
			}
			xs, ys = []float64{xmin, xmax}, []float64{l.ys[0], l.ys[0]}
		}
		style := chart.Style{
			StrokeColor:     l.color,
			StrokeWidth:     l.width,
			StrokeDashArray: l.dash,
		}
		if style.StrokeWidth == 0 {
			style.StrokeWidth = 2
		}
		if l.fill {
			style.FillColor = l.color.WithAlpha(48)
		}
		if len(xs) == 1 || l.dots && !l.ref {
			style.DotWidth = 3
			style.DotColor = l.color
		}
		legend = append(legend, legendItem{label: l.name, style: style})
		if len(xs) == 0 {
			// Keep the legend entry (the reader sees the series exists) but
			// give go-chart nothing to draw.
			continue
		}
		series = append(series, chart.ContinuousSeries{
			Name:    l.name,
			Style:   style,
			XValues: xs,
			YValues: ys,
		})
	}
	return newChart(spec, series, legend, ticks(xmin, xmax, 12), ticks(ymin, ymax, 6))
}

// placeholderChart is drawn instead of a chart with no data: a flat zero
// line under a title that says so.
func placeholderChart(spec lineSpec) chart.Chart {
	spec.title += " — no data"
	series := []chart.Series{chart.ContinuousSeries{
		Name:    "no data",
		Style:   chart.Style{StrokeColor: colorGrey, StrokeWidth: 1, StrokeDashArray: []float64{4, 4}},
		XValues: []float64{0, 1},
		YValues: []float64{0, 0},
	}}
	c := newChart(spec, series, nil, ticks(0, 1, 2), ticks(0, 1, 2))
	c.Elements = append(c.Elements, func(r chart.Renderer, plot chart.Box, defaults chart.Style) {
		if defaults.Font == nil {
			return
		}
		r.ResetStyle()
		chart.Style{Font: defaults.Font, FontSize: 16, FontColor: colorGrey}.WriteTextOptionsToRenderer(r)
		const msg = "no data"
		tb := r.MeasureText(msg)
		r.Text(msg, plot.Left+(plot.Width()-tb.Width())/2, plot.Top+(plot.Height()+tb.Height())/2)
		r.ResetStyle()
	})
	return c
}

// newChart assembles the go-chart value shared by every chart.
func newChart(spec lineSpec, series []chart.Series, legend []legendItem, xticks, yticks []chart.Tick) chart.Chart {
	legendWidth := measureLegend(legend)
	padRight := legendMinPadding
	if legendWidth > 0 {
		padRight = legendWidth + 2*legendMargin
	}
	grid := chart.Style{StrokeColor: colorGrid, StrokeWidth: 1}
	c := chart.Chart{
		Title:      spec.title,
		TitleStyle: chart.Style{FontSize: 14},
		Width:      chartWidth,
		Height:     chartHeight,
		Background: chart.Style{
			Padding: chart.Box{Top: 48, Left: 24, Right: padRight, Bottom: 12},
		},
		XAxis: chart.XAxis{
			Name:           spec.xName,
			Ticks:          xticks,
			GridMajorStyle: grid,
			GridMinorStyle: grid,
		},
		YAxis: chart.YAxis{
			Name:           spec.yName,
			Ticks:          yticks,
			GridMajorStyle: grid,
			GridMinorStyle: grid,
		},
		Series: series,
	}
	if len(legend) > 0 {
		c.Elements = []chart.Renderable{drawLegend(legend, chartWidth-padRight+legendMargin, legendWidth)}
	}
	return c
}

// ticks returns about n round ticks covering [lo, hi]; go-chart takes the
// axis range from the first and last tick.
func ticks(lo, hi float64, n int) []chart.Tick {
	if !(hi > lo) {
		hi = lo + 1
	}
	step := niceStep((hi - lo) / float64(n))
	first := math.Floor(lo/step+1e-9) * step
	last := math.Ceil(hi/step-1e-9) * step
	decimals := 0
	if step < 1 {
		decimals = int(math.Ceil(-math.Log10(step) - 1e-9))
	}
	thousands := math.Max(math.Abs(first), math.Abs(last)) >= 10000
	var out []chart.Tick
	for i := 0; ; i++ {
		v := first + float64(i)*step
		if v > last+step/2 || i > 4*n+4 {
			break
		}
		var label string
		if thousands {
			label = trimZeros(strconv.FormatFloat(v/1000, 'f', 1, 64)) + "k"
		} else {
			label = strconv.FormatFloat(v, 'f', decimals, 64)
		}
		if label == "-0" {
			label = "0"
		}
		out = append(out, chart.Tick{Value: v, Label: label})
	}
	return out
}

// niceStep rounds raw up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if !(raw > 0) || math.IsInf(raw, 0) {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw*(1-1e-9) {
			return m * mag
		}
	}
	return 10 * mag
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// legendItem is one row of a legend.
type legendItem struct {
	label string
	style chart.Style
}

func legendLabel(s string) string {
	if r := []rune(s); len(r) > legendMaxLabel {
		return string(r[:legendMaxLabel-1]) + "…"
	}
	return s
}

// measureLegend returns the width in pixels of the legend of items (0 for
// none), measured with the font the chart renders with.
func measureLegend(items []legendItem) int {
	if len(items) == 0 {
		return 0
	}
	font, err := chart.GetDefaultFont()
	r, rerr := chart.PNG(1, 1)
	widest := 0
	for _, it := range items {
		label := legendLabel(it.label)
		w := 6 * len([]rune(label)) // fallback estimate
		if err == nil && rerr == nil {
			r.SetFont(font)
			r.SetFontSize(legendFontSize)
			w = r.MeasureText(label).Width()
		}
		widest = max(widest, w)
	}
	return 2*legendPad + legendLineLen + legendGap + widest
}

// drawLegend draws items in a box at x = left, aligned with the top of the
// plot, in the right padding of the chart (so it never hides data). Rows
// that do not fit in the height of the plot are summed up as "+N more".
func drawLegend(items []legendItem, left, width int) chart.Renderable {
	return func(r chart.Renderer, plot chart.Box, defaults chart.Style) {
		font := defaults.Font
		if font == nil {
			f, err := chart.GetDefaultFont()
			if err != nil {
				return
			}
			font = f
		}
		fit := max(1, (plot.Height()-2*legendPad)/legendRowHeight)
		shown := items
		more := 0
		if len(items) > fit {
			shown, more = items[:fit-1], len(items)-(fit-1)
		}
		rows := len(shown)
		if more > 0 {
			rows++
		}
		box := chart.Box{
			Top:    plot.Top,
			Left:   left,
			Right:  left + width,
			Bottom: plot.Top + 2*legendPad + rows*legendRowHeight - (legendRowHeight - legendTextHeight),
		}
		chart.Draw.Box(r, box, chart.Style{FillColor: drawing.ColorWhite, StrokeColor: colorGrey, StrokeWidth: 1})

		text := chart.Style{Font: font, FontSize: legendFontSize, FontColor: colorBlack}
		y := box.Top + legendPad
		for _, it := range shown {
			mid := y + legendTextHeight/2
			x := left + legendPad
			r.ResetStyle()
			r.SetStrokeColor(it.style.StrokeColor)
			r.SetStrokeWidth(math.Max(it.style.StrokeWidth, 2))
			r.SetStrokeDashArray(it.style.StrokeDashArray)
			r.MoveTo(x, mid)
			r.LineTo(x+legendLineLen, mid)
			r.Stroke()

			r.ResetStyle()
			text.WriteTextOptionsToRenderer(r)
			r.Text(legendLabel(it.label), x+legendLineLen+legendGap, y+legendTextHeight-2)
			y += legendRowHeight
		}
		if more > 0 {
			r.ResetStyle()
			text.WriteTextOptionsToRenderer(r)
			r.Text(fmt.Sprintf("+%d more", more), left+legendPad, y+legendTextHeight-2)
		}
		r.ResetStyle()
	}
}

// renderPNG renders c as a PNG image.
func renderPNG(c chart.Chart) ([]byte, error) {
	var buf bytes.Buffer
	if err := c.Render(chart.PNG, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// renderSVG renders c as an <svg> element fit to be inlined in HTML: no
// XML prolog, no namespace declarations (HTML does not need them), and
// every text escaped (go-chart writes titles and labels verbatim).
func renderSVG(c chart.Chart) (string, error) {
	var buf bytes.Buffer
	if err := c.Render(escapingSVG, &buf); err != nil {
		return "", err
	}
	s := buf.String()
	if strings.HasPrefix(s, "<?xml") {
		if i := strings.Index(s, "?>"); i >= 0 {
			s = s[i+2:]
		}
	}
	s = strings.TrimSpace(s)
	s = strings.Replace(s, ` xmlns="http://www.w3.org/2000/svg"`, "", 1)
	s = strings.Replace(s, ` xmlns:xlink="http://www.w3.org/1999/xlink"`, "", 1)
	return s, nil
}

// escapingSVG is chart.SVG with its text escaped for XML and HTML.
func escapingSVG(width, height int) (chart.Renderer, error) {
	r, err := chart.SVG(width, height)
	if err != nil {
		return nil, err
	}
	return escapingRenderer{r}, nil
}

type escapingRenderer struct{ chart.Renderer }

func (e escapingRenderer) Text(body string, x, y int) {
	e.Renderer.Text(html.EscapeString(body), x, y)
}

// routeNames returns the routes of r: those of the summary in its order,
// then any others seen in the seconds, sorted.
func routeNames(r *Report) []string {
	seen := map[string]bool{}
	var names []string
	for _, rs := range r.Routes {
		if !seen[rs.Route] {
			seen[rs.Route] = true
			names = append(names, rs.Route)
		}
	}
	extra := map[string]bool{}
	for _, s := range r.Seconds {
		for name := range s.Routes {
			if !seen[name] {
				extra[name] = true
			}
		}
	}
	return append(names, slices.Sorted(maps.Keys(extra))...)
}
