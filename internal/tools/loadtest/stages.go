package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"shopstream/internal/platform/lag"
)

// stageSnap is the pipeline's counters at one moment, read from the shop
// itself: GET /lag (every group's committed and end offsets) and GET
// /metrics (the outbox backlog, the command-handling histogram). Two of
// them, a step apart, give each stage's own rate.
type stageSnap struct {
	at time.Time
	// groups: committed offsets summed over partitions (nothing committed
	// counts 0), lag, and the end offsets of the partitions the group reads.
	committed, lag, intake map[string]int64
	// ends: the end offset of each topic, summed over its partitions.
	ends  map[string]int64
	lagOK bool
	// backlog is shop_outbox_backlog (-1: unknown).
	backlog int64
	// commands is shop_command_duration_seconds (commands admitted, not
	// shed), cumulative.
	commands histogram
}

// histogram is a Prometheus histogram summed over its labels: cumulative
// counts by upper bound, and the total count.
type histogram struct {
	bounds []float64 // ascending, +Inf last
	counts []float64
	count  float64
}

// snapshot reads the shop's stage counters now. What it cannot read is
// left unknown (lagOK false, backlog -1), not an error.
func (s *sampler) snapshot(ctx context.Context) stageSnap {
	snap := stageSnap{at: time.Now(), backlog: -1, committed: map[string]int64{}, lag: map[string]int64{},
		intake: map[string]int64{}, ends: map[string]int64{}}
	if groups, err := s.groups(ctx); err == nil {
		snap.lagOK = true
		fillGroups(&snap, groups)
	}
	if s.c.admin == "" {
		return snap // no admin listener known: no metrics
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.c.admin+"/metrics", nil)
	if err != nil {
		return snap
	}
	resp, err := s.c.http.Do(req)
	if err != nil {
		return snap
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		snap.backlog, snap.commands = parseMetrics(resp.Body)
	}
	return snap
}

// fillGroups folds GET /lag's groups into snap: only groups with members
// (a broker keeps the offsets of groups nobody runs any more).
func fillGroups(snap *stageSnap, groups []lag.Group) {
	type tp struct {
		topic string
		p     int32
	}
	ends := map[tp]int64{}
	for _, g := range groups {
		if g.Members == 0 {
			continue
		}
		snap.lag[g.Group] = g.Lag
		var committed, intake int64
		for _, p := range g.Partitions {
			committed += max(p.Committed, 0)
			intake += p.End
			ends[tp{p.Topic, p.Partition}] = max(ends[tp{p.Topic, p.Partition}], p.End)
		}
		snap.committed[g.Group], snap.intake[g.Group] = committed, intake
	}
	for k, end := range ends {
		snap.ends[k.topic] += end
	}
}

// parseMetrics reads the Prometheus text format for the two figures the
// ramp needs: shop_outbox_backlog (summed over its series; -1 if absent)
// and shop_command_duration_seconds summed over commands and outcomes,
// leaving out the commands shed before running ("overloaded").
func parseMetrics(r io.Reader) (backlog int64, commands histogram) {
	backlog = -1
	byBound := map[float64]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, value, ok := metricLine(line)
		if !ok {
			continue
		}
		switch name {
		case "shop_outbox_backlog":
			backlog = max(backlog, 0) + int64(value)
		case "shop_command_duration_seconds_bucket":
			if labels["outcome"] == "overloaded" {
				continue
			}
			le, err := strconv.ParseFloat(labels["le"], 64)
			if err != nil {
				continue
			}
			byBound[le] += value
		case "shop_command_duration_seconds_count":
			if labels["outcome"] != "overloaded" {
				commands.count += value
			}
		}
	}
	for b := range byBound {
		commands.bounds = append(commands.bounds, b)
	}
	sort.Float64s(commands.bounds)
	for _, b := range commands.bounds {
		commands.counts = append(commands.counts, byBound[b])
	}
	return backlog, commands
}

// metricLine splits `name{a="x",b="y"} value [timestamp]`.
func metricLine(line string) (name string, labels map[string]string, value float64, ok bool) {
	labels = map[string]string{}
	rest := line
	if i := strings.IndexAny(line, "{ "); i < 0 {
		return "", nil, 0, false
	} else if line[i] == '{' {
		name = line[:i]
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return "", nil, 0, false
		}
		for _, kv := range splitLabels(line[i+1 : j]) {
			k, v, found := strings.Cut(kv, "=")
			if found {
				if uq, err := strconv.Unquote(v); err == nil {
					v = uq
				}
				labels[k] = v
			}
		}
		rest = line[j+1:]
	} else {
		name, rest = line[:i], line[i:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", nil, 0, false
	}
	return name, labels, v, true
}

// splitLabels splits a="x",b="y" on the commas outside quotes.
func splitLabels(s string) []string {
	var out []string
	quoted, escaped, from := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			out = append(out, s[from:i])
			from = i + 1
		}
	}
	if from < len(s) {
		out = append(out, s[from:])
	}
	return out
}

// since is h minus an earlier reading of the same histogram.
func (h histogram) since(old histogram) histogram {
	d := histogram{bounds: h.bounds, count: h.count - old.count}
	prev := map[float64]float64{}
	for i, b := range old.bounds {
		prev[b] = old.counts[i]
	}
	for i, b := range h.bounds {
		d.counts = append(d.counts, h.counts[i]-prev[b])
	}
	return d
}

// quantile is quantile q (0–1) in seconds, interpolated linearly inside
// its bucket as Prometheus's histogram_quantile does. NaN when empty; the
// largest finite bound when q falls in the +Inf bucket.
func (h histogram) quantile(q float64) float64 {
	if len(h.counts) == 0 || h.counts[len(h.counts)-1] <= 0 {
		return math.NaN()
	}
	rank := q * h.counts[len(h.counts)-1]
	lower, below := 0.0, 0.0
	for i, c := range h.counts {
		if c >= rank && c > below {
			if math.IsInf(h.bounds[i], 1) {
				return lower
			}
			return lower + (h.bounds[i]-lower)*(rank-below)/(c-below)
		}
		lower, below = h.bounds[i], c
	}
	return lower
}

func (s stageSnap) String() string {
	return fmt.Sprintf("snap@%s lag %v backlog %d", s.at.Format(time.TimeOnly), s.lag, s.backlog)
}
