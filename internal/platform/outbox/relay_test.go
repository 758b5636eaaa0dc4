package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/outbox"
	"shopstream/internal/platform/pgdb"
	"shopstream/internal/testinfra/kafkatest"
	"shopstream/internal/testinfra/testbackend"
)

const topic = "shopstream.test.outbox"

func startPostgres(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	url := testbackend.PostgresURL(t)
	pool, err := pgdb.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pgdb.Migrate(ctx, pool, outbox.Migrations()); err != nil {
		t.Fatal(err)
	}
	return pool
}

func createTopic(t *testing.T, brokers []string) {
	t.Helper()
	resp, err := kadm.NewClient(kafkatest.Client(t, brokers)).CreateTopic(context.Background(), 3, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatal(err)
	}
}

// appendCommands appends n transactions, each of one or two records, over
// keys k0..k4, with a per-key sequence number in the value.
func appendCommands(t *testing.T, pool *pgxpool.Pool, run string, n int, seq map[string]int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		key := fmt.Sprintf("%s-k%d", run, i%5)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var recs []*kgo.Record
			for range 1 + i%2 {
				seq[key]++
				recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(strconv.Itoa(seq[key])),
					Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte(fmt.Sprintf("%s-%d", key, seq[key]))}}})
			}
			return outbox.Append(ctx, tx, recs...)
		})
		if err != nil {
			t.Fatal(err)
		}
		outbox.Notify(pool)
	}
}

func total(seq map[string]int) int {
	n := 0
	for _, v := range seq {
		n += v
	}
	return n
}

// checkOrder asserts every key's records arrived exactly in sequence order
// (duplicates from at-least-once delivery would also show here: there must
// be none in a clean run).
func checkOrder(t *testing.T, recs []*kgo.Record, seq map[string]int) {
	t.Helper()
	last := map[string]int{}
	for _, r := range recs {
		v, _ := strconv.Atoi(string(r.Value))
		if v != last[string(r.Key)]+1 {
			t.Fatalf("key %s: record %d after %d", r.Key, v, last[string(r.Key)])
		}
		last[string(r.Key)] = v
		if string(r.Headers[0].Value) != fmt.Sprintf("%s-%d", r.Key, v) {
			t.Fatalf("headers not carried: %v", r.Headers)
		}
	}
	for k, n := range seq {
		if last[k] != n {
			t.Fatalf("key %s: got %d records, want %d", k, last[k], n)
		}
	}
}

func newRelay(t *testing.T, pool *pgxpool.Pool, brokers []string) *outbox.Relay {
	return outbox.NewRelay(pool, kafkatest.Client(t, brokers), outbox.RelayConfig{
		BatchSize: 50, PollInterval: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

func waitEmpty(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if n, err := outbox.Pending(context.Background(), pool); err == nil && n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	n, _ := outbox.Pending(context.Background(), pool)
	t.Fatalf("outbox still holds %d rows", n)
}

// The relay publishes every committed record, in order per key, and
// empties the outbox; with two relays only one publishes at a time and the
// standby takes over when the active one stops.
func TestRelayPublishesInOrderAndFailsOver(t *testing.T) {
	kafkatest.ForEachBroker(t, func(t *testing.T, brokers []string) {
		pool := startPostgres(t)
		createTopic(t, brokers)
		from := kafkatest.From(t, brokers, topic)
		run := strconv.FormatInt(time.Now().UnixNano(), 36)
		seq := map[string]int{}

		ctxA, stopA := context.WithCancel(context.Background())
		doneA := make(chan error, 1)
		go func() { doneA <- newRelay(t, pool, brokers).Run(ctxA) }()
		appendCommands(t, pool, run, 120, seq)
		waitEmpty(t, pool)

		// A second relay waits on the lock; the first one stops; the
		// second takes over and publishes what comes next.
		ctxB, stopB := context.WithCancel(context.Background())
		defer stopB()
		doneB := make(chan error, 1)
		go func() { doneB <- newRelay(t, pool, brokers).Run(ctxB) }()
		time.Sleep(300 * time.Millisecond)
		stopA()
		if err := <-doneA; err != nil {
			t.Fatal(err)
		}
		appendCommands(t, pool, run, 120, seq)
		waitEmpty(t, pool)

		recs := kafkatest.Consume(t, brokers, from, total(seq), 30*time.Second)
		checkOrder(t, recs, seq)
		stopB()
		if err := <-doneB; err != nil {
			t.Fatal(err)
		}
	})
}

// Records committed while no relay runs wait in the outbox and are
// published, in order, when one starts; a rolled-back transaction
// publishes nothing.
func TestRelayPublishesBacklogAndNothingRolledBack(t *testing.T) {
	brokers := kafkatest.Embedded(t)
	pool := startPostgres(t)
	createTopic(t, brokers)
	from := kafkatest.From(t, brokers, topic)
	seq := map[string]int{}
	appendCommands(t, pool, "backlog", 40, seq)
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		if err := outbox.Append(context.Background(), tx, &kgo.Record{Topic: topic, Key: []byte("ghost"), Value: []byte("1")}); err != nil {
			return err
		}
		return fmt.Errorf("the command failed after appending")
	})
	if err == nil {
		t.Fatal("want the rollback error")
	}
	if n, _ := outbox.Pending(context.Background(), pool); n != int64(total(seq)) {
		t.Fatalf("outbox holds %d rows, want %d", n, total(seq))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = newRelay(t, pool, brokers).Run(ctx) }()
	recs := kafkatest.Consume(t, brokers, from, total(seq), 30*time.Second)
	checkOrder(t, recs, seq)
	waitEmpty(t, pool)
	// Nothing more arrives (in particular not the rolled-back record).
	cl := kafkatest.Client(t, brokers, kgo.ConsumePartitions(from))
	pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
	defer pcancel()
	var seen int
	for pctx.Err() == nil {
		seen += len(cl.PollFetches(pctx).Records())
	}
	if seen != total(seq) {
		t.Fatalf("%d records on the topic, want %d", seen, total(seq))
	}
}

// A batch the broker does not acknowledge is not deleted: the relay's claim
// rolls back, the rows stay, and they are published once the broker takes
// them.
func TestRelayKeepsWhatTheBrokerRefused(t *testing.T) {
	brokers := kafkatest.Embedded(t)
	pool := startPostgres(t)
	seq := map[string]int{}
	appendCommands(t, pool, "refused", 10, seq)
	cl := kafkatest.Client(t, brokers, kgo.RecordDeliveryTimeout(time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- outbox.NewRelay(pool, cl, outbox.RelayConfig{BatchSize: 4, PollInterval: 100 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Run(ctx)
	}()
	time.Sleep(3 * time.Second) // failed attempts
	if n, _ := outbox.Pending(context.Background(), pool); n != int64(total(seq)) {
		t.Fatalf("outbox holds %d rows after failed publications, want %d", n, total(seq))
	}
	createTopic(t, brokers)
	waitEmpty(t, pool)
	from := map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart(), 2: kgo.NewOffset().AtStart()}}
	checkOrder(t, kafkatest.Consume(t, brokers, from, total(seq), 30*time.Second), seq)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Notify after a commit wakes the relay at once, long before its poll:
// directly when the relay runs on the same pool, by NOTIFY from another
// pool (another process).
func TestNotifyWakesTheRelay(t *testing.T) {
	brokers := kafkatest.Embedded(t)
	pool := startPostgres(t)
	createTopic(t, brokers)
	from := kafkatest.From(t, brokers, topic)
	other, err := pgxpool.New(context.Background(), pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = outbox.NewRelay(pool, kafkatest.Client(t, brokers), outbox.RelayConfig{PollInterval: time.Minute,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Run(ctx)
	}()
	seq := map[string]int{}
	waitEmpty(t, pool) // the relay has made its first pass and waits
	time.Sleep(100 * time.Millisecond)
	for _, c := range []struct {
		name string
		pool *pgxpool.Pool
	}{{"same pool", pool}, {"another pool", other}} {
		began := time.Now()
		appendCommands(t, c.pool, c.name, 1, seq)
		deadline := time.Now().Add(10 * time.Second)
		for {
			if n, err := outbox.Pending(context.Background(), pool); err == nil && n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not published 10 s after Notify (poll interval 1 min)", c.name)
			}
			time.Sleep(time.Millisecond)
		}
		t.Logf("%s: published %v after the commit", c.name, time.Since(began).Round(time.Millisecond))
	}
	checkOrder(t, kafkatest.Consume(t, brokers, from, total(seq), 30*time.Second), seq)
}
