package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"shopstream/internal/platform/deadletter"
)

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
	topics, err := deadletter.Topics(*topic, verb == "redrive")
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
		letters, err := deadletter.List(ctx, adm, kopts, topics)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEAD LETTER\tFROM\tGROUP\tAT\tREDRIVEN\tERROR")
		for _, l := range letters {
			r, d, msg := l.Record, l.Info, l.Info.Error
			if len(msg) > 100 {
				msg = msg[:97] + "..."
			}
			fmt.Fprintf(tw, "%s/%d/%d\t%s\t%s\t%s\t%v\t%s\n", r.Topic, r.Partition, r.Offset, d.Origin(), d.Group, d.At.Format(time.RFC3339), l.Redriven, msg)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d dead letters in %s\n", len(letters), strings.Join(topics, ", "))
		return nil
	}
	res, err := deadletter.Redrive(ctx, cl, adm, kopts, topics[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sent %d records back from %s (%d dead letters read, %d of them a second group's copy)\n",
		res.Sent, topics[0], res.Read, res.Read-res.Sent)
	return nil
}
