// Package lag measures how far the shop's consumer groups (processors and
// projectors) are behind the event log: per group, per topic and
// partition, the committed offset, the end offset and their difference.
// It is what GET /lag serves and what a load test watches.
package lag

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
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
	State      string      `json:"state"` // Stable, Empty, PreparingRebalance…
	Members    int         `json:"members"`
	Lag        int64       `json:"lag"` // records not yet processed, all partitions
	Partitions []Partition `json:"partitions"`
}

// Measure returns the lag of every consumer group whose name starts with
// Prefix, sorted by name. A group that has committed nothing on a
// partition lags by the whole partition.
func Measure(ctx context.Context, adm *kadm.Client) ([]Group, error) {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list consumer groups: %w", err)
	}
	var names []string
	for _, g := range listed.Groups() {
		if strings.HasPrefix(g, Prefix) {
			names = append(names, g)
		}
	}
	return Of(ctx, adm, names...)
}

// Of returns the lag of the named groups, sorted by name.
func Of(ctx context.Context, adm *kadm.Client, groups ...string) ([]Group, error) {
	if len(groups) == 0 {
		return nil, nil
	}
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return nil, fmt.Errorf("consumer lag: %w", err)
	}
	out := make([]Group, 0, len(lags))
	for _, l := range lags.Sorted() {
		if err := l.Error(); err != nil {
			return nil, fmt.Errorf("consumer lag of %s: %w", l.Group, err)
		}
		g := Group{Group: l.Group, State: l.State, Members: len(l.Members), Partitions: []Partition{}}
		for _, m := range l.Lag.Sorted() {
			if m.Err != nil {
				continue // a partition whose end offset is unknown right now
			}
			g.Partitions = append(g.Partitions, Partition{Topic: m.Topic, Partition: m.Partition, Committed: m.Commit.At, End: m.End.Offset, Lag: m.Lag})
			g.Lag += m.Lag
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
