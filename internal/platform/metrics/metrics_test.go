package metrics_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/metrics"
	"shopstream/internal/testinfra/kafkatest"
)

// The lag of a known group is measured per partition at scrape: records
// past its commit, a whole partition it never committed on; groups this
// instance does not know are left out. Dead-letter topics report the
// records they hold, a missing one nothing.
func TestLagAndDeadLettersAreMeasuredAtScrape(t *testing.T) {
	brokers := kafkatest.Embedded(t)
	cl := kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, topic := range []string{"t", "t.dlq"} {
		if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	var recs []*kgo.Record
	for i := range 5 {
		recs = append(recs, &kgo.Record{Topic: "t", Partition: int32(i % 2), Value: []byte("x")})
	}
	recs = append(recs, &kgo.Record{Topic: "t.dlq", Partition: 1, Value: []byte("x")})
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Partition 0 holds 3 records, partition 1 holds 2.
	for group, at := range map[string]int64{"shop.known": 1, "shop.stranger": 3} {
		offs := kadm.Offsets{}
		offs.Add(kadm.Offset{Topic: "t", Partition: 0, At: at})
		if err := adm.CommitAllOffsets(ctx, group, offs); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	lag := metrics.Lag(adm, map[string][]string{"shop.known": {"t"}, "shop.idle": {"t"}}, time.Second, log)
	if got, want := collect(t, lag), []string{
		`shop_consumer_lag{group="shop.idle",partition="0",topic="t"} 3`,
		`shop_consumer_lag{group="shop.idle",partition="1",topic="t"} 2`,
		`shop_consumer_lag{group="shop.known",partition="0",topic="t"} 2`,
		`shop_consumer_lag{group="shop.known",partition="1",topic="t"} 2`,
	}; !slices.Equal(got, want) {
		t.Errorf("lag series\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	dlq := metrics.DeadLetters(adm, []string{"t.dlq", "missing.dlq"}, time.Second, log)
	if got, want := collect(t, dlq), []string{`shop_dlq_records{topic="t.dlq"} 1`}; !slices.Equal(got, want) {
		t.Errorf("dead-letter series %v, want %v", got, want)
	}
}

// A measurement that fails (the broker is gone) emits nothing: the scrape
// goes on without the family rather than failing or showing an old value.
func TestAFailedMeasurementEmitsNothing(t *testing.T) {
	brokers := kafkatest.Embedded(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	cl.Close()
	adm := kadm.NewClient(cl)
	log := slog.New(slog.DiscardHandler)
	if got := collect(t, metrics.Lag(adm, map[string][]string{"shop.g": {"t"}}, 200*time.Millisecond, log)); len(got) != 0 {
		t.Errorf("lag with the client closed: %v, want nothing", got)
	}
	if got := collect(t, metrics.DeadLetters(adm, []string{"t.dlq"}, 200*time.Millisecond, log)); len(got) != 0 {
		t.Errorf("dead letters with the client closed: %v, want nothing", got)
	}
}

// collect gathers c alone and renders each series as name{labels} value,
// labels sorted, series sorted.
func collect(t *testing.T, c prometheus.Collector) []string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			out = append(out, fmt.Sprintf("%s{%s} %v", mf.GetName(), strings.Join(labels, ","), m.GetGauge().GetValue()))
		}
	}
	slices.Sort(out)
	return out
}
