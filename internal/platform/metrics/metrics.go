// Package metrics holds the shop's Prometheus collectors that measure
// state outside the process at scrape time: consumer-group lag, dead-letter
// topics and the outbox backlog. Each measures when Prometheus scrapes,
// never in the background, so a value is never older than its scrape and
// costs nothing when no one scrapes; each measurement is bounded by a
// timeout (Timeout by default), and one that fails or times out is logged
// and left out of that scrape (the series goes stale rather than showing
// an old value), without failing the other metrics.
//
// These measure shared state (the broker, the outbox table): every
// instance that serves them reports the same values, so a dashboard
// aggregates them with max, not sum.
package metrics

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"

	"shopstream/internal/platform/lag"
	"shopstream/internal/platform/outbox"
)

// Metric names, which dashboards use.
const (
	ConsumerLag   = "shop_consumer_lag"
	DLQRecords    = "shop_dlq_records"
	OutboxBacklog = "shop_outbox_backlog"
)

// Timeout bounds one measurement when a collector is given none.
const Timeout = 3 * time.Second

// Lag is a collector of ConsumerLag{group,topic,partition}: per partition,
// the records of the topic a group has not committed past (a partition it
// never committed on counts whole), measured with lag.Measure for the
// groups of known only (group to the topics it consumes; groups that ran
// elsewhere or long ago are not this instance's to report).
func Lag(adm *kadm.Client, known map[string][]string, timeout time.Duration, log *slog.Logger) prometheus.Collector {
	name, desc := ConsumerLag, prometheus.NewDesc(ConsumerLag,
		"Records of a partition the consumer group has not processed yet: end offset minus committed offset, measured at scrape.",
		[]string{"group", "topic", "partition"}, nil)
	return &scrapeCollector{name: name, desc: desc, timeout: timeout, log: log, measure: func(ctx context.Context, emit func(float64, ...string)) error {
		groups, err := lag.Measure(ctx, adm, known)
		if err != nil {
			return err
		}
		for _, g := range groups {
			if _, ok := known[g.Group]; !ok {
				continue
			}
			for _, p := range g.Partitions {
				emit(float64(p.Lag), g.Group, p.Topic, strconv.Itoa(int(p.Partition)))
			}
		}
		return nil
	}}
}

// DeadLetters is a collector of DLQRecords{topic}: the records each
// dead-letter topic of topics holds (end offset minus start offset, summed
// over its partitions), 0 for an empty one. A topic missing from the
// cluster is left out.
func DeadLetters(adm *kadm.Client, topics []string, timeout time.Duration, log *slog.Logger) prometheus.Collector {
	name, desc := DLQRecords, prometheus.NewDesc(DLQRecords,
		"Records held in a dead-letter topic (end offset minus start offset), measured at scrape.",
		[]string{"topic"}, nil)
	topics = slices.Clone(topics)
	return &scrapeCollector{name: name, desc: desc, timeout: timeout, log: log, measure: func(ctx context.Context, emit func(float64, ...string)) error {
		ends, err := adm.ListEndOffsets(ctx, topics...)
		if err != nil {
			return err
		}
		starts, err := adm.ListStartOffsets(ctx, topics...)
		if err != nil {
			return err
		}
		for _, t := range topics {
			held, ok := int64(0), false
			for p, end := range ends[t] {
				start, found := starts.Lookup(t, p)
				if end.Err != nil || !found || start.Err != nil {
					continue
				}
				held, ok = held+end.Offset-start.Offset, true
			}
			if ok {
				emit(float64(held), t)
			}
		}
		return nil
	}}
}

// Querier is what the outbox backlog is counted through (a pgx pool).
type Querier interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}

// Outbox is a collector of OutboxBacklog{outbox}: the rows of each outbox
// table not yet published, counted with outbox.Pending through its
// querier. An outbox is labelled by its key in outboxes, "" standing for
// the shared database's (label "outbox.records"); a context's database
// is "<context>/outbox.records".
func Outbox(outboxes map[string]Querier, timeout time.Duration, log *slog.Logger) prometheus.Collector {
	name, desc := OutboxBacklog, prometheus.NewDesc(OutboxBacklog,
		"Events committed to the outbox and not yet published to Kafka, measured at scrape.",
		[]string{"outbox"}, nil)
	keys := slices.Sorted(maps.Keys(outboxes))
	return &scrapeCollector{name: name, desc: desc, timeout: timeout, log: log, measure: func(ctx context.Context, emit func(float64, ...string)) error {
		for _, k := range keys {
			n, err := outbox.Pending(ctx, outboxes[k])
			if err != nil {
				return err
			}
			label := outbox.Table
			if k != "" {
				label = k + "/" + outbox.Table
			}
			emit(float64(n), label)
		}
		return nil
	}}
}

// scrapeCollector emits gauges of one family that measure calls
// for at every scrape.
type scrapeCollector struct {
	name    string
	desc    *prometheus.Desc
	timeout time.Duration
	log     *slog.Logger
	measure func(ctx context.Context, emit func(v float64, labels ...string)) error
}

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect measures; a failed measurement is logged and emits nothing, so
// that a partial answer never passes for a whole one.
func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	timeout := c.timeout
	if timeout <= 0 {
		timeout = Timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []prometheus.Metric
	err := c.measure(ctx, func(v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, labels...))
	})
	if err != nil {
		if c.log != nil {
			c.log.Warn("metric not measured", "metric", c.name, "err", err)
		}
		return
	}
	for _, m := range out {
		ch <- m
	}
}
