// Package lag measures how far the shop's consumer groups (processors and
// projectors) are behind the event log: per group, per topic and
// partition, the committed offset, the end offset and their difference.
// It is what GET /lag serves and what a load test watches.
package lag

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Prefix starts the name of every consumer group of the shop.
const Prefix = "shop."

// Partition is one partition's lag in a group.
type Partition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"` // -1: nothing committed yet
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"`
}

// Group is a consumer group's lag.
type Group struct {
	Group      string      `json:"group"`
	State      string      `json:"state"` // Stable, Empty, PreparingRebalance…; Absent: never ran
	Members    int         `json:"members"`
	Lag        int64       `json:"lag"` // records not yet processed, all partitions
	Partitions []Partition `json:"partitions"`
}

// Measure returns the lag of every consumer group whose name starts with
// Prefix, and of every group of known (group name to the topics it
// consumes), sorted by name. A partition a group has committed nothing on
// lags by the whole partition: known topics count even for a group that
// is down or has never run, whose own commits would not name them.
func Measure(ctx context.Context, adm *kadm.Client, known map[string][]string) ([]Group, error) {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list consumer groups: %w", err)
	}
	names := slices.Collect(maps.Keys(known))
	for _, g := range listed.Groups() {
		if strings.HasPrefix(g, Prefix) && !slices.Contains(names, g) {
			names = append(names, g)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	lags, err := adm.Lag(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("consumer lag: %w", err)
	}
	var topics []string
	for _, ts := range known {
		topics = append(topics, ts...)
	}
	ends := kadm.ListedOffsets{}
	if len(topics) > 0 {
		slices.Sort(topics)
		if ends, err = adm.ListEndOffsets(ctx, slices.Compact(topics)...); err != nil {
			return nil, fmt.Errorf("end offsets: %w", err)
		}
	}
	out := make([]Group, 0, len(lags))
	for _, l := range lags.Sorted() {
		g := Group{Group: l.Group, State: l.State, Members: len(l.Members), Partitions: []Partition{}}
		if err := l.Error(); errors.Is(err, kerr.GroupIDNotFound) {
			g.State = "Absent" // a known group that has not run yet
		} else if err != nil {
			return nil, fmt.Errorf("consumer lag of %s: %w", l.Group, err)
		}
		for _, m := range l.Lag.Sorted() {
			if m.Err != nil {
				continue // a partition whose end offset is unknown right now
			}
			g.Partitions = append(g.Partitions, Partition{Topic: m.Topic, Partition: m.Partition, Committed: m.Commit.At, End: m.End.Offset, Lag: m.Lag})
		}
		for _, t := range known[l.Group] {
			for p, end := range ends[t] {
				if _, ok := l.Lag.Lookup(t, p); !ok && end.Err == nil {
					g.Partitions = append(g.Partitions, Partition{Topic: t, Partition: p, Committed: -1, End: end.Offset, Lag: end.Offset})
				}
			}
		}
		for _, p := range g.Partitions {
			g.Lag += p.Lag
		}
		slices.SortFunc(g.Partitions, func(a, b Partition) int {
			if c := strings.Compare(a.Topic, b.Topic); c != 0 {
				return c
			}
			return int(a.Partition - b.Partition)
		})
		out = append(out, g)
	}
	return out, nil
}
