package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/app"
	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/platform/eventlog"
)

func runTopics(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("topics", stderr)
	target := addBrokerTarget(fs)
	if err := parse(fs, args, getenv); err != nil {
		return err
	}
	cl, _, err := target.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	topics, err := eventlog.DescribeTopics(ctx, kadm.NewClient(cl))
	if err != nil {
		return fmt.Errorf("cluster %s: %w", strings.Join(target.brokers, ","), err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tRECORDS\tEND OFFSETS")
	for _, t := range topics {
		if t.Partitions == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t(missing)\n", t.Name)
			continue
		}
		ends := make([]string, len(t.EndOffsets))
		for i, o := range t.EndOffsets {
			ends[i] = fmt.Sprint(o)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", t.Name, t.Partitions, t.Records, strings.Join(ends, " "))
	}
	return tw.Flush()
}

// brokerTarget is the Kafka a command talks to: --brokers, or the running
// `shop dev` of --data-dir.
type brokerTarget struct {
	brokers listFlag
	dataDir *string
	sec     *kafkaSecFlags
}

func addBrokerTarget(fs *flag.FlagSet) *brokerTarget {
	b := &brokerTarget{}
	fs.Var(&b.brokers, "brokers", brokersUsage+" (default: from --data-dir)")
	b.dataDir = fs.String("data-dir", ".shop", dataDirUsage+" (used when --brokers is not given)")
	b.sec = addKafkaSecFlags(fs)
	return b
}

// client connects to the target and returns the client and the options
// of another client of it (brokers, security).
func (b *brokerTarget) client() (*kgo.Client, []kgo.Opt, error) {
	brokers := b.brokers
	if len(brokers) == 0 {
		e, err := devstack.ReadEndpoints(*b.dataDir)
		if err != nil {
			return nil, nil, fmt.Errorf("%w; or give --brokers", err)
		}
		brokers = e.Brokers
	}
	if _, err := b.sec.security(); err != nil {
		return nil, nil, err
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, b.sec.opts()...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("--brokers: %w", err)
	}
	return cl, opts, nil
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", stderr)
	url := fs.String("postgres-url", "", "PostgreSQL URL of the write model (default: from --data-dir)")
	dataDir := fs.String("data-dir", ".shop", dataDirUsage+" (used when --postgres-url is not given)")
	perContext := fs.Bool("database-per-context", false, databasePerContextUsage)
	if err := parse(fs, args, getenv); err != nil {
		return err
	}
	if *url == "" {
		e, err := devstack.ReadEndpoints(*dataDir)
		if err != nil {
			return fmt.Errorf("%w; or give --postgres-url", err)
		}
		*url = e.PostgresURL
	}
	n, err := app.MigrateAll(ctx, *url, *perContext)
	if err != nil {
		return fmt.Errorf("--postgres-url: %w", err)
	}
	known := len(app.Migrations())
	if *perContext {
		dbs, _ := app.ContextDatabases(*url)
		known = 0
		for _, d := range dbs {
			known += len(d.Migrations)
		}
		fmt.Fprintf(stdout, "applied %d migrations (%d known) in %d databases, one per context\n", n, known, len(dbs))
		return nil
	}
	fmt.Fprintf(stdout, "applied %d migrations (%d known)\n", n, known)
	return nil
}
