package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/eventlog"
	"shopstream/schemas"
)

// redriveGroup records, per dead-letter topic, how far redrive has gone,
// so that a record is sent back once.
const redriveGroup = "shop.dlq.redrive"

func runDLQ(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "redrive") {
		return errors.New("usage: shop dlq list|redrive [--topic T] [--brokers B | --data-dir D]")
	}
	verb := args[0]
	fs := newFlags("dlq "+verb, stderr)
	target := addBrokerTarget(fs)
	topic := fs.String("topic", "", "event-log topic whose dead letters to "+verb+" (default: every topic)"+
		map[string]string{"list": "", "redrive": "; required"}[verb])
	if err := parse(fs, args[1:], getenv); err != nil {
		return err
	}
	topics, err := dlqTopics(*topic, verb == "redrive")
	if err != nil {
		return err
	}
	cl, kopts, err := target.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if verb == "list" {
		return listDeadLetters(ctx, adm, kopts, topics, stdout)
	}
	return redrive(ctx, cl, adm, kopts, topics[0], stdout)
}

// dlqTopics are the dead-letter topics named by --topic, or all of them.
func dlqTopics(topic string, required bool) ([]string, error) {
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

// readRange reads the records of topics between from (default: the start)
// and the end offsets as they are now.
func readRange(ctx context.Context, adm *kadm.Client, kopts []kgo.Opt, topics []string, from kadm.Offsets) ([]*kgo.Record, kadm.ListedOffsets, error) {
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

func listDeadLetters(ctx context.Context, adm *kadm.Client, kopts []kgo.Opt, topics []string, stdout io.Writer) error {
	recs, _, err := readRange(ctx, adm, kopts, topics, nil)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEAD LETTER\tFROM\tGROUP\tAT\tERROR")
	for _, r := range recs {
		d, _ := eventlog.ReadDeadLetter(r)
		msg := d.Error
		if len(msg) > 100 {
			msg = msg[:97] + "..."
		}
		fmt.Fprintf(tw, "%s/%d/%d\t%s\t%s\t%s\t%s\n", r.Topic, r.Partition, r.Offset, d.Origin(), d.Group, d.At.Format(time.RFC3339), msg)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d dead letters in %s\n", len(recs), strings.Join(topics, ", "))
	return nil
}

// redrive sends the dead letters of one topic not redriven yet back to
// their topic, once per original record (several groups may have given up
// on the same one), then records how far it went.
func redrive(ctx context.Context, cl *kgo.Client, adm *kadm.Client, kopts []kgo.Opt, dlq string, stdout io.Writer) error {
	var done kadm.OffsetResponses
	err := retryCoordinator(ctx, func() (err error) { done, err = adm.FetchOffsets(ctx, redriveGroup); return err })
	if err != nil && !errors.Is(err, kadm.ErrEmpty) && !errors.Is(err, kerr.GroupIDNotFound) {
		return fmt.Errorf("redrive progress: %w", err)
	}
	recs, ends, err := readRange(ctx, adm, kopts, []string{dlq}, done.Offsets())
	if err != nil {
		return err
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
			return err
		}
		out = append(out, back)
	}
	if len(out) > 0 {
		if err := cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
			return fmt.Errorf("send back: %w (nothing recorded: the next redrive sends them again)", err)
		}
	}
	progress := kadm.Offsets{}
	ends.Each(func(o kadm.ListedOffset) { progress.AddOffset(o.Topic, o.Partition, o.Offset, -1) })
	if err := retryCoordinator(ctx, func() error {
		resp, err := adm.CommitOffsets(ctx, redriveGroup, progress)
		if err == nil {
			err = resp.Error()
		}
		return err
	}); err != nil {
		return fmt.Errorf("record redrive progress: %w", err)
	}
	fmt.Fprintf(stdout, "sent %d records back from %s (%d dead letters read, %d of them a second group's copy)\n",
		len(out), dlq, len(recs), len(recs)-len(out))
	return nil
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
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}
