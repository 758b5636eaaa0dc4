package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"shopstream/schemas"
)

// EnsureTopics creates every event-log topic and its dead-letter topic
// (<topic>.dlq, same partitions) that does not exist yet, with its
// partition count and infinite retention (retention.ms=-1), and the
// replication factor given (-1 for the broker's default). Existing topics
// are left as they are, and only missing ones are created, so a principal
// without CREATE (a component under ACLs, whose topics a deployment made)
// passes; topics the principal may not even see are left to the grant
// check (app's). Safe to run from several instances at once. It returns
// once every topic it sees has a leader for every partition (creation is
// asynchronous on a real cluster), or with ctx's error.
func EnsureTopics(ctx context.Context, adm *kadm.Client, replication int16) error {
	configs := map[string]*string{"retention.ms": ptr("-1"), "retention.bytes": ptr("-1")}
	partitions := map[string]int32{}
	var names []string
	for _, spec := range schemas.Topics() {
		for _, name := range []string{spec.Name, DeadLetterTopic(spec.Name)} {
			names = append(names, name)
			partitions[name] = spec.Partitions
		}
	}
	// One request for all; one per topic only when that is refused: a
	// metadata request naming a topic the principal may not see fails
	// whole.
	all, allErr := adm.ListTopics(ctx, names...)
	var visible []string
	for _, name := range names {
		details, err := all, allErr
		if errors.Is(allErr, kerr.TopicAuthorizationFailed) {
			details, err = adm.ListTopics(ctx, name)
		}
		d, listed := details[name]
		switch {
		case errors.Is(err, kerr.TopicAuthorizationFailed) || listed && errors.Is(d.Err, kerr.TopicAuthorizationFailed):
			continue // not this principal's
		case err != nil:
			return fmt.Errorf("list topic %s: %w", name, err)
		case listed && d.Err == nil:
			visible = append(visible, name)
			continue
		}
		resp, err := adm.CreateTopic(ctx, partitions[name], replication, configs, name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", name, err)
		}
		visible = append(visible, name)
	}
	return waitForLeaders(ctx, adm, visible)
}

// waitForLeaders polls metadata until every partition of topics has a leader.
func waitForLeaders(ctx context.Context, adm *kadm.Client, topics []string) error {
	for {
		details, err := adm.ListTopics(ctx, topics...)
		ready := err == nil
		for _, name := range topics {
			d, ok := details[name]
			if !ok || d.Err != nil || len(d.Partitions) == 0 {
				ready = false
				continue
			}
			for _, p := range d.Partitions {
				if p.Err != nil || p.Leader < 0 {
					ready = false
				}
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics not ready: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func ptr(s string) *string { return &s }

// TopicOffsets is one event-log topic as `shop topics` shows it.
type TopicOffsets struct {
	Name       string
	Partitions int
	EndOffsets []int64 // per partition
	Records    int64   // sum of end offsets minus start offsets
}

// DescribeTopics lists the event-log topics with their partitions and end
// offsets, in the contract's order, each followed by its dead-letter topic
// when one exists. A contract topic missing from the cluster is listed with
// zero partitions.
func DescribeTopics(ctx context.Context, adm *kadm.Client) ([]TopicOffsets, error) {
	existing, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var names []string
	for _, spec := range schemas.Topics() {
		names = append(names, spec.Name)
		if existing.Has(spec.Name + schemas.DLQSuffix) {
			names = append(names, spec.Name+schemas.DLQSuffix)
		}
	}
	ends, err := adm.ListEndOffsets(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	out := make([]TopicOffsets, 0, len(names))
	for _, n := range names {
		t := TopicOffsets{Name: n}
		if existing.Has(n) {
			t.Partitions = len(existing[n].Partitions)
			t.EndOffsets = make([]int64, t.Partitions)
		}
		for p := range t.Partitions {
			end, ok := ends.Lookup(n, int32(p))
			if !ok || end.Err != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %v", n, p, end.Err)
			}
			start, _ := starts.Lookup(n, int32(p))
			t.EndOffsets[p] = end.Offset
			t.Records += end.Offset - start.Offset
		}
		out = append(out, t)
	}
	return out, nil
}
