package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/devinfra/embedded/kafka"
	"shopstream/internal/testinfra/kafkatest"
	"shopstream/schemas"
)

// The checkpoint is zero before Run; it moves with each committed batch;
// an idle, caught-up runner keeps it fresh (its fetches come back empty);
// once the broker stops answering it ages.
func TestCheckpointIsFreshWhileCaughtUpAndAgesWithoutBroker(t *testing.T) {
	f := setup(t)
	if !f.r.Checkpoint().IsZero() {
		t.Fatalf("checkpoint %v before Run, want zero", f.r.Checkpoint())
	}
	cluster, err := kafka.Start(kafka.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.Brokers()
	kafkatest.EnsureTopics(t, brokers)
	cl, err := kgo.NewClient(append(f.r.ClientOpts(), kgo.SeedBrokers(brokers...), kgo.RetryTimeout(time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.r.Run(ctx, cl) }()
	defer func() {
		cancel()
		<-done
	}()

	prod := kafkatest.Client(t, brokers)
	rec := f.record(t, 0, "p1", 1, schemas.ProductRegistered{ProductID: "p1", Title: "T", PriceCents: 100, Currency: "EUR", InitialStock: 1})
	if err := prod.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); len(f.docs(t)) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the record was never folded")
		}
	}
	time.Sleep(1500 * time.Millisecond) // idle: nothing more to fold
	if age := time.Since(f.r.Checkpoint()); age > time.Second {
		t.Fatalf("checkpoint of an idle, caught-up runner is %v old, want under 1 s", age)
	}
	cluster.Close() // the broker stops answering
	time.Sleep(1500 * time.Millisecond)
	if age := time.Since(f.r.Checkpoint()); age < time.Second {
		t.Fatalf("checkpoint %v old 1.5 s after the broker went away, want it to age", age)
	}
}
