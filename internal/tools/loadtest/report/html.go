package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

//go:embed report.html.tmpl
var pageSource string

var pageTemplate = template.Must(template.New("report").Parse(pageSource))

// htmlChart is one chart as the page shows it.
type htmlChart struct {
	Title string
	File  string
	SVG   string
}

// page is what report.html.tmpl lays out; every figure is already formatted.
type page struct {
	Title    string
	Subtitle string
	Verdict  verdict
	Sections []section
	Inv      []invRow
	Routes   []routeRow
	Charts   []chartView
	// Capacity and Steps show a ramp (none without one).
	Capacity []section
	Steps    []stepRow
}

// stepRow is one step of a ramp as its table shows it.
type stepRow struct {
	N, Offered, Accepted, P50, P99, OrdersP99, Shed, Lost string
	Holds                                                 bool
	Stages                                                []kv
}

type verdict struct {
	OK    bool
	Class string // "ok", "fail" or "none"
	Text  string
}

type section struct {
	Title string
	Rows  []kv
}

type kv struct {
	Key   string
	Value string
	Class string // "", "ok", "fail", "warn"
}

type invRow struct {
	ID, Name, Checked, Detail string
	Holds                     bool
	Violations                []string
}

type routeRow struct {
	Route                            string
	Count, OK, Shed, Refused, Errors string
	P50, P95, P99, Max               string
	ShedClass, ErrorsClass           string
}

type chartView struct {
	Title string
	File  string
	SVG   template.HTML // rendered by go-chart, text escaped by escapingRenderer
}

// renderHTML writes report.html for r with the charts already rendered.
func renderHTML(w io.Writer, r *Report, charts []htmlChart) error {
	p := page{
		Title:    "Load test: " + orDash(r.Profile.Name),
		Subtitle: subtitle(r),
		Verdict:  verdictOf(r),
		Sections: summary(r),
	}
	for _, inv := range r.Invariants {
		p.Inv = append(p.Inv, invRow{
			ID: inv.ID, Name: inv.Name, Holds: inv.Holds,
			Checked: count(int64(inv.Checked)), Detail: inv.Detail,
			Violations: inv.Violations,
		})
	}
	for _, rs := range r.Routes {
		row := routeRow{
			Route: rs.Route, Count: count(rs.Count), OK: count(rs.OK),
			Shed: count(rs.Shed), Refused: count(rs.Refused), Errors: count(rs.Errors),
			P50: millis(rs.P50), P95: millis(rs.P95), P99: millis(rs.P99), Max: millis(rs.Max),
		}
		if rs.Shed > 0 {
			row.ShedClass = "warn"
		}
		if rs.Errors > 0 {
			row.ErrorsClass = "fail"
		}
		p.Routes = append(p.Routes, row)
	}
	for _, c := range charts {
		p.Charts = append(p.Charts, chartView{Title: c.Title, File: c.File, SVG: template.HTML(c.SVG)})
	}
	if r.Ramp != nil {
		p.Capacity, p.Steps = capacity(r.Ramp)
	}
	return pageTemplate.Execute(w, p)
}

func subtitle(r *Report) string {
	var parts []string
	if !r.Started.IsZero() {
		parts = append(parts, "started "+r.Started.Format("2006-01-02 15:04:05 MST"))
	}
	if r.Target != "" {
		parts = append(parts, "against "+r.Target)
	}
	if len(parts) == 0 {
		return "no start time recorded"
	}
	return strings.Join(parts, ", ")
}

// verdictOf names the invariants that failed, if any.
func verdictOf(r *Report) verdict {
	if len(r.Invariants) == 0 {
		return verdict{Class: "none", Text: "No invariant was checked"}
	}
	var failed []string
	for _, inv := range r.Invariants {
		if !inv.Holds {
			failed = append(failed, inv.ID)
		}
	}
	switch len(failed) {
	case 0:
		return verdict{OK: true, Class: "ok", Text: fmt.Sprintf("All %d invariants hold", len(r.Invariants))}
	case 1:
		return verdict{Class: "fail", Text: "Invariant " + failed[0] + " violated"}
	default:
		return verdict{Class: "fail", Text: "Invariants " + strings.Join(failed, ", ") + " violated"}
	}
}

// summary is the run at a glance, as a few key/value tables.
func summary(r *Report) []section {
	pr, t := r.Profile, r.Totals
	profile := section{Title: "Profile", Rows: []kv{
		{Key: "name", Value: orDash(pr.Name)},
		{Key: "base rate", Value: number(pr.BaseRPS) + " req/s"},
	}}
	if pr.SpikeFor > 0 {
		profile.Rows = append(profile.Rows,
			kv{Key: "spike", Value: fmt.Sprintf("×%s (%s req/s)", number(pr.SpikeX), number(pr.BaseRPS*pr.SpikeX))},
			kv{Key: "spike window", Value: fmt.Sprintf("%s → %s", dur(pr.SpikeAt), dur(pr.SpikeAt+pr.SpikeFor))},
		)
	} else {
		profile.Rows = append(profile.Rows, kv{Key: "spike", Value: "none"})
	}
	profile.Rows = append(profile.Rows,
		kv{Key: "duration", Value: dur(pr.Duration)},
		kv{Key: "seed", Value: strconv.FormatInt(pr.Seed, 10)},
		kv{Key: "target", Value: orDash(r.Target)},
	)

	m := r.Machine
	machine := section{Title: "Machine", Rows: []kv{
		{Key: "host", Value: orDash(m.Hostname)},
		{Key: "os/arch", Value: orDash(strings.Trim(m.OS+"/"+m.Arch, "/"))},
		{Key: "CPUs", Value: strconv.Itoa(m.CPUs)},
		{Key: "Go", Value: orDash(m.GoVersion)},
	}}

	requests := section{Title: "Requests", Rows: []kv{
		{Key: "requests", Value: count(t.Requests)},
		{Key: "achieved rate", Value: number(t.AchievedRPS) + " req/s"},
		{Key: "ok (2xx)", Value: share(t.OK, t.Requests)},
		{Key: "shed (429, 503 with Retry-After)", Value: share(t.Shed, t.Requests), Class: warnIf(t.Shed > 0)},
		{Key: "refused (4xx)", Value: share(t.Refused, t.Requests)},
		{Key: "errors (5xx, transport)", Value: share(t.Errors, t.Requests), Class: failIf(t.Errors > 0)},
		{Key: "late (generator behind)", Value: share(t.Late, t.Requests), Class: warnIf(t.Late > 0)},
	}}

	orders := section{Title: "Orders", Rows: []kv{
		{Key: "accepted", Value: count(t.OrdersAccepted)},
		{Key: "confirmed", Value: share(t.OrdersConfirmed, t.OrdersAccepted)},
		{Key: "cancelled", Value: share(t.OrdersCancelled, t.OrdersAccepted)},
	}}

	emails := section{Title: "Emails", Rows: []kv{{Key: "sent", Value: count(t.EmailsSent)}}}
	peak, over := 0, 0
	for _, e := range r.Emails {
		peak = max(peak, e.Sent)
		if r.EmailQuota > 0 && e.Sent > r.EmailQuota {
			over++
		}
	}
	if r.EmailQuota > 0 {
		emails.Rows = append(emails.Rows,
			kv{Key: "quota", Value: strconv.Itoa(r.EmailQuota) + " /s"},
			kv{Key: "peak", Value: strconv.Itoa(peak) + " /s", Class: failIf(peak > r.EmailQuota)},
			kv{Key: "seconds over quota", Value: strconv.Itoa(over), Class: failIf(over > 0)},
		)
	} else {
		emails.Rows = append(emails.Rows,
			kv{Key: "quota", Value: "unknown"},
			kv{Key: "peak", Value: strconv.Itoa(peak) + " /s"},
		)
	}

	d := r.Drain
	drain := section{Title: "Drain", Rows: []kv{
		{Key: "elapsed", Value: dur(d.Elapsed)},
		{Key: "timeout", Value: dur(d.Timeout)},
	}}
	if d.Drained {
		drain.Rows = append(drain.Rows, kv{Key: "drained", Value: "yes", Class: "ok"})
	} else {
		drain.Rows = append(drain.Rows, kv{Key: "drained", Value: "no: the timeout ended it", Class: "fail"})
	}

	return []section{profile, requests, orders, emails, drain, machine}
}

func warnIf(b bool) string {
	if b {
		return "warn"
	}
	return ""
}

func failIf(b bool) string {
	if b {
		return "fail"
	}
	return ""
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "—"
	}
	return s
}

// count formats n with thin grouping: 1234567 → "1 234 567".
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString("\u202f") // narrow no-break space
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// share is "n (p %)" of total.
func share(n, total int64) string {
	if total <= 0 {
		return count(n)
	}
	return fmt.Sprintf("%s (%.1f %%)", count(n), 100*float64(n)/float64(total))
}

// number formats a rate or factor: no decimals when whole, else one.
func number(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "—"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return count(int64(v))
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}

func millis(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Microsecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

// capacity is a ramp at a glance: its verdict cards and its steps.
func capacity(rp *Ramp) ([]section, []stepRow) {
	bn := rp.Bottleneck
	if bn == "" {
		bn = "none"
	}
	capCard := section{Title: "Capacity", Rows: []kv{
		{Key: "sustainable", Value: number(rp.Sustainable) + " orders/s", Class: failIf(rp.Sustainable <= 0)},
		{Key: "bottleneck", Value: bn},
		{Key: "why", Value: orDash(rp.BottleneckReason)},
		{Key: "stopped by", Value: orDash(rp.Stopped)},
		{Key: "steps", Value: fmt.Sprintf("%d × %s from %s by %s (max %s)", len(rp.Steps), dur(rp.StepFor), number(rp.StartRate), number(rp.Step), number(rp.Max))},
		{Key: "p99 bound", Value: millis(rp.P99BoundMs) + " ms"},
		{Key: "mix", Value: fmt.Sprintf("%s (%.1f requests per order)", rp.Mix, rp.RequestsPerOrder)},
	}}
	cards := []section{capCard}
	if sp := rp.Spike; sp != nil {
		a := sp.Answers
		cards = append(cards, section{Title: fmt.Sprintf("Spike ×%s", number(sp.X)), Rows: []kv{
			{Key: "offered", Value: fmt.Sprintf("%s orders/s for %s", number(sp.Offered), dur(sp.For))},
			{Key: "requests started within", Value: fmt.Sprintf("%s (%d in flight at most)", dur(sp.Took), sp.Workers)},
			{Key: "started late (generator behind)", Value: share(a.Late, a.Sent), Class: warnIf(a.Late > 0)},
			{Key: "answered 500", Value: count(a.Status500), Class: okFail(sp.No500)},
			{Key: "other 5xx", Value: count(a.Other5xx), Class: failIf(a.Other5xx > 0)},
			{Key: "client timeouts", Value: count(a.Timeouts), Class: failIf(a.Timeouts > 0)},
			{Key: "shed 429 / 503", Value: count(a.Shed429) + " / " + count(a.Shed503), Class: warnIf(a.Shed429+a.Shed503 > 0)},
			{Key: "sheds without Retry-After", Value: count(a.ShedWithoutRetryAfter), Class: okFail(sp.Sheds)},
			{Key: "orders accepted", Value: count(sp.AcceptedOrders)},
			{Key: "not done at its end", Value: count(sp.BacklogOrders)},
			{Key: "drain", Value: dur(sp.Drain), Class: okFail(sp.BoundHolds)},
			{Key: "bound 1.2 × backlog ÷ capacity", Value: dur(sp.Bound)},
		}})
	}
	if v := rp.Visible; v != nil {
		cards = append(cards, section{Title: "Accepted → visible", Rows: []kv{
			{Key: "offered", Value: fmt.Sprintf("%s orders/s for %s", number(v.Offered), dur(v.For))},
			{Key: "orders probed", Value: count(v.Orders)},
			{Key: "p50", Value: millis(v.P50) + " ms"},
			{Key: "p99", Value: millis(v.P99) + " ms", Class: okFail(v.BoundHolds)},
			{Key: "max", Value: millis(v.Max) + " ms"},
			{Key: "never seen", Value: count(v.NotSeen), Class: failIf(v.NotSeen > 0)},
			{Key: "bound", Value: millis(v.BoundMs) + " ms (poll " + millis(v.PollMs) + " ms)"},
		}})
	}
	if len(rp.Notes) > 0 {
		notes := section{Title: "Notes"}
		for _, n := range rp.Notes {
			notes.Rows = append(notes.Rows, kv{Key: "note", Value: n})
		}
		cards = append(cards, notes)
	}
	var rows []stepRow
	for i, st := range rp.Steps {
		a := st.Answers
		row := stepRow{N: strconv.Itoa(i + 1), Offered: number(st.Offered), Accepted: strconv.FormatFloat(st.AcceptedOrders, 'f', 1, 64),
			P50: millis(st.P50), P99: millis(st.P99), OrdersP99: millis(st.OrdersP99), Holds: st.Holds,
			Shed: count(a.Shed429 + a.Shed503), Lost: count(a.Status500 + a.Other5xx + a.Timeouts + a.Transport)}
		for _, s := range st.Stages {
			class := ""
			switch {
			case s.Quota:
				class = "warn"
			case !s.Holds:
				class = "fail"
			}
			val := fmt.Sprintf("%.1f %s", s.Rate, s.Unit)
			if s.BacklogEnd >= 0 {
				val += fmt.Sprintf(", backlog %d → %d", max(s.BacklogStart, 0), s.BacklogEnd)
			}
			if s.Reason != "" && (!s.Holds || s.Quota) {
				val += ": " + s.Reason
			}
			row.Stages = append(row.Stages, kv{Key: strings.TrimPrefix(s.Name, "shop."), Value: val, Class: class})
		}
		rows = append(rows, row)
	}
	return cards, rows
}

func okFail(ok bool) string {
	if ok {
		return "ok"
	}
	return "fail"
}
