package main

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/eventlog"
	"shopstream/internal/testinfra/kafkatest"
	"shopstream/schemas"
)

// Dead letters are listed with their origin, group and error, and redrive
// sends each original record back once, without its dead-letter headers;
// a second redrive sends it no more. (On CI's shared broker other tests
// leave dead letters on the same topic, which a redrive sends back too: the
// test follows its own record, by a key of its own.)
func TestDLQListAndRedrive(t *testing.T) {
	kafkatest.ForEachBroker(t, func(t *testing.T, brokers []string) {
		kafkatest.EnsureTopics(t, brokers)
		cl := kafkatest.Client(t, brokers)
		ctx := context.Background()
		from := kafkatest.From(t, brokers, schemas.TopicOrders)
		// What two groups gave up on: one original record, two dead letters.
		key := "o-" + uuid.NewString()
		orig := &kgo.Record{Topic: schemas.TopicOrders, Partition: 2, Offset: 41, Key: []byte(key), Value: []byte("garbage"),
			Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("e-1")}}}
		at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
		for _, g := range []string{"shop.processor.saga.v1", "shop.processor.billing.v1"} {
			if err := cl.ProduceSync(ctx, eventlog.DeadLetter(orig, g, errors.New("poison: not avro"), at)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		dir := "--brokers=" + strings.Join(brokers, ",")
		listed, stderr, err := runShop(t, nil, "dlq", "list", dir, "--topic", schemas.TopicOrders)
		if err != nil {
			t.Fatalf("dlq list: %v\n%s", err, stderr)
		}
		for _, want := range []string{"shop.orders.v1/2/41", "shop.processor.saga.v1", "shop.processor.billing.v1", "poison: not avro"} {
			if !strings.Contains(listed, want) {
				t.Fatalf("dlq list lacks %q:\n%s", want, listed)
			}
		}
		said, stderr, err := runShop(t, nil, "dlq", "redrive", dir, "--topic", schemas.TopicOrders)
		if err != nil || !regexp.MustCompile(`sent [1-9]\d* records back`).MatchString(said) {
			t.Fatalf("dlq redrive: %v %s %s", err, said, stderr)
		}
		ours := func(r *kgo.Record) bool { return string(r.Key) == key }
		back := kafkatest.ConsumeWhere(t, brokers, from, 1, 10*time.Second, ours)
		if len(back) != 1 || string(back[0].Value) != "garbage" {
			t.Fatalf("redriven records %v", back)
		}
		for _, h := range back[0].Headers {
			if strings.HasPrefix(h.Key, "dlq_") {
				t.Fatalf("redriven record keeps header %s", h.Key)
			}
		}
		if said, _, err := runShop(t, nil, "dlq", "redrive", dir, "--topic", schemas.TopicOrders); err != nil {
			t.Fatalf("second redrive: %v %s", err, said)
		}
		// Once: after a second redrive the topic still holds one copy.
		if n := kafkatest.CountWhere(t, brokers, from, 1, 3*time.Second, ours); n != 1 {
			t.Fatalf("after a second redrive, %d copies of the record on %s, want 1", n, schemas.TopicOrders)
		}
		if _, _, err := runShop(t, nil, "dlq", "redrive", dir); err == nil || !strings.Contains(err.Error(), "--topic") {
			t.Fatalf("redrive without --topic: %v", err)
		}
	})
}
