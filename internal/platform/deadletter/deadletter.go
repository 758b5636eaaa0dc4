// Package deadletter reads the event log's dead-letter topics and sends
// their records back to the topics they came from. `shop dlq` and the
// console's dead-letter view both go through it.
//
// Guarantees: a redrive sends each original record back at most once per
// redrive, even when several groups gave up on it (one copy each), and
// records how far it went (the offsets of RedriveGroup) only after the
// broker acknowledged every record sent: a failed redrive sends the same
// records again next time, so none is lost, and a record is never sent
// back twice by two successful redrives.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/eventlog"
	"shopstream/schemas"
)

// RedriveGroup records, per dead-letter topic, how far redrive has gone,
// so that a record is sent back once.
const RedriveGroup = "shop.dlq.redrive"

// Topics are the dead-letter topics of the event-log topic named topic
// (its name or its dead-letter topic's), or of every topic when topic is
// empty and not required.
func Topics(topic string, required bool) ([]string, error) {
	var out []string
	for _, spec := range schemas.Topics() {
		if topic == "" || topic == spec.Name || topic == eventlog.DeadLetterTopic(spec.Name) {
			out = append(out, eventlog.DeadLetterTopic(spec.Name))
		}
	}
	switch {
	case topic == "" && required:
		return nil, errors.New("--topic is required: name the event-log topic whose dead letters to send back")
	case len(out) == 0:
		return nil, fmt.Errorf("--topic %s: not an event-log topic (see `shop topics`)", topic)
	}
	return out, nil
}

// Letter is one record of a dead-letter topic.
type Letter struct {
	Record *kgo.Record
	Info   eventlog.DeadLetterInfo // from its headers (zero when it has none)
	// Redriven: a redrive has gone past it (it was sent back, or was a
	// second group's copy of a record sent back).
	Redriven bool
}

// List reads every record of topics (dead-letter topics) up to their end
// offsets now, each marked with whether a redrive went past it.
func List(ctx context.Context, adm *kadm.Client, kopts []kgo.Opt, topics []string) ([]Letter, error) {
	done, err := progress(ctx, adm)
	if err != nil {
		return nil, err
	}
	recs, _, err := read(ctx, adm, kopts, topics, nil)
	if err != nil {
		return nil, err
	}
	out := make([]Letter, 0, len(recs))
	for _, r := range recs {
		info, _ := eventlog.ReadDeadLetter(r)
		past, ok := done.Lookup(r.Topic, r.Partition)
		out = append(out, Letter{Record: r, Info: info, Redriven: ok && r.Offset < past.At})
	}
	return out, nil
}

// Result says what a redrive did.
type Result struct {
	Sent int // records sent back to their topics
	Read int // dead letters read (Sent plus other groups' copies)
}

// Redrive sends the dead letters of dlq not redriven yet back to their
// topic, once per original record, then records how far it went.
func Redrive(ctx context.Context, cl *kgo.Client, adm *kadm.Client, kopts []kgo.Opt, dlq string) (Result, error) {
	done, err := progress(ctx, adm)
	if err != nil {
		return Result{}, err
	}
	recs, ends, err := read(ctx, adm, kopts, []string{dlq}, done)
	if err != nil {
		return Result{}, err
	}
	seen := map[string]bool{}
	var out []*kgo.Record
	for _, r := range recs {
		d, ok := eventlog.ReadDeadLetter(r)
		if !ok || seen[d.Origin()] {
			continue
		}
		seen[d.Origin()] = true
		back, err := eventlog.Redrive(r)
		if err != nil {
			return Result{}, err
		}
		out = append(out, back)
	}
	if len(out) > 0 {
		if err := cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
			return Result{}, fmt.Errorf("send back: %w (nothing recorded: the next redrive sends them again)", err)
		}
	}
	reached := kadm.Offsets{}
	ends.Each(func(o kadm.ListedOffset) { reached.AddOffset(o.Topic, o.Partition, o.Offset, -1) })
	if err := retryCoordinator(ctx, func() error {
		resp, err := adm.CommitOffsets(ctx, RedriveGroup, reached)
		if err == nil {
			err = resp.Error()
		}
		return err
	}); err != nil {
		return Result{}, fmt.Errorf("record redrive progress: %w", err)
	}
	return Result{Sent: len(out), Read: len(recs)}, nil
}

// progress is how far redrives went, per dead-letter partition.
func progress(ctx context.Context, adm *kadm.Client) (kadm.Offsets, error) {
	var done kadm.OffsetResponses
	err := retryCoordinator(ctx, func() (err error) { done, err = adm.FetchOffsets(ctx, RedriveGroup); return err })
	if err != nil && !errors.Is(err, kadm.ErrEmpty) && !errors.Is(err, kerr.GroupIDNotFound) {
		return nil, fmt.Errorf("redrive progress: %w", err)
	}
	return done.Offsets(), nil
}

// read reads the records of topics between from (default: the start) and
// the end offsets as they are now.
func read(ctx context.Context, adm *kadm.Client, kopts []kgo.Opt, topics []string, from kadm.Offsets) ([]*kgo.Record, kadm.ListedOffsets, error) {
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("end offsets: %w", err)
	}
	parts := map[string]map[int32]kgo.Offset{}
	left := 0
	ends.Each(func(o kadm.ListedOffset) {
		start := int64(0)
		if c, ok := from.Lookup(o.Topic, o.Partition); ok {
			start = c.At
		}
		if start < o.Offset {
			if parts[o.Topic] == nil {
				parts[o.Topic] = map[int32]kgo.Offset{}
			}
			parts[o.Topic][o.Partition] = kgo.NewOffset().At(start)
			left += int(o.Offset - start)
		}
	})
	if left == 0 {
		return nil, ends, nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(kopts), kgo.ConsumePartitions(parts))...)
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	var recs []*kgo.Record
	for len(recs) < left {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("read %d of %d dead letters: %w", len(recs), left, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := ends.Lookup(r.Topic, r.Partition); ok && r.Offset < end.Offset {
				recs = append(recs, r)
			}
		})
	}
	return recs, ends, nil
}

// retryCoordinator runs a group request again while the broker says its
// group coordinator is not ready yet (a new cluster creates its offsets
// topic on the first group request), for at most 30 s.
func retryCoordinator(ctx context.Context, req func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := req()
		if !errors.Is(err, kerr.CoordinatorNotAvailable) && !errors.Is(err, kerr.CoordinatorLoadInProgress) &&
			!errors.Is(err, kerr.NotCoordinator) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
