package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/devinfra/embedded/kafka"
)

// A restart on the same data directory keeps topics, records and committed
// group offsets.
func TestRestartKeepsRecordsAndOffsets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()

	c, err := kafka.Start(kafka.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		r := &kgo.Record{Topic: "t", Key: []byte{byte(i)}, Value: []byte{byte(i)}}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	if _, err := adm.CommitOffsets(ctx, "g", kadm.OffsetsFromRecords(kgo.Record{Topic: "t", Partition: 0, Offset: 4})); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	c.Close()

	c2, err := kafka.Start(kafka.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	cl2, err := kgo.NewClient(kgo.SeedBrokers(c2.Brokers()...), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	got := 0
	for got < 100 {
		fs := cl2.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of 100 records after restart", got)
		}
		got += len(fs.Records())
	}
	offs, err := kadm.NewClient(cl2).FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("t", 0); !ok || o.At != 5 {
		t.Fatalf("committed offset after restart: %+v (found %v), want 5", o, ok)
	}
}
