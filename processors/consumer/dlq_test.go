package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"shopstream/internal/platform/eventlog"
	"shopstream/internal/testinfra/kafkatest"
	"shopstream/internal/testinfra/testenv"
	"shopstream/processors/consumer"
)

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range slices.Backward(r.Headers) {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func sameHeader(a, b kgo.RecordHeader) bool {
	return a.Key == b.Key && string(a.Value) == string(b.Value)
}

// Records the serde cannot read, records the handler refuses with
// Permanent, and records whose handler error wraps one of the config's
// declared Permanent errors go, once and unretried, to the dead-letter topic with their
// key, value and headers and the reason; the partition goes on with the
// next records and its offset is committed past them.
func TestPoisonGoesToDeadLetterTopicAndPartitionGoesOn(t *testing.T) {
	kafkatest.ForEachBroker(t, func(t *testing.T, brokers []string) {
		f := setup(t, brokers)
		dlq := eventlog.DeadLetterTopic(topic)
		from := kafkatest.From(t, brokers, dlq)

		undecodable := f.record(3, "undecodable")
		undecodable.Value = []byte("not avro")
		headerless := f.record(3, "headerless")
		headerless.Headers = nil
		refused := f.record(3, "refused")
		declared := f.record(3, "declared")
		recs := f.produce(f.record(3, "good0"), undecodable, f.record(3, "good1"), headerless, refused, declared, f.record(3, "good2"))
		wantErr := map[int64]string{
			undecodable.Offset: "not in the Confluent wire format",
			headerless.Offset:  "ce_id",
			refused.Offset:     "no such product",
			declared.Offset:    "reserve: out of stock for good",
		}
		errDeclared := errors.New("out of stock for good")

		var j journal
		var refusals, declaredCalls atomic.Int32
		began := time.Now()
		cfg := f.config(func(ctx context.Context, env eventlog.Envelope) error {
			switch n := f.name(env); n {
			case "":
			case "refused":
				refusals.Add(1)
				return consumer.Permanent(errors.New("no such product"))
			case "declared":
				declaredCalls.Add(1)
				return fmt.Errorf("reserve: %w", errDeclared)
			default:
				j.add(handling{name: n, partition: env.Partition, offset: env.Offset})
			}
			return nil
		})
		cfg.Permanent = []error{errDeclared}
		m := f.start(cfg)
		testenv.WaitFor(t, 30*time.Second, "the good records", func() bool { return j.has("good0", "good1", "good2") })
		if got := j.names(); !slices.Equal(got, []string{"good0", "good1", "good2"}) {
			t.Errorf("handled %v, want good0 good1 good2", got)
		}

		// On a shared broker other tests' projectors also read this topic
		// and dead-letter the same poison records: count only this group's.
		dead := kafkatest.ConsumeWhere(t, brokers, from, len(wantErr), 30*time.Second, func(r *kgo.Record) bool {
			g, _ := header(r, eventlog.HeaderDLQGroup)
			return g == f.group
		})
		for _, d := range dead {
			off, _ := header(d, eventlog.HeaderDLQOffset)
			o, err := strconv.ParseInt(off, 10, 64)
			i := slices.IndexFunc(recs, func(r *kgo.Record) bool { return r.Offset == o })
			if err != nil || i < 0 || wantErr[o] == "" {
				t.Errorf("dead letter with offset header %q is none of the poison records", off)
				continue
			}
			orig := recs[i]
			if string(d.Key) != string(orig.Key) || string(d.Value) != string(orig.Value) {
				t.Errorf("offset %d: dead letter key/value %q/%q, want %q/%q", o, d.Key, d.Value, orig.Key, orig.Value)
			}
			if len(d.Headers) != len(orig.Headers)+6 || !slices.EqualFunc(d.Headers[:len(orig.Headers)], orig.Headers, sameHeader) {
				t.Errorf("offset %d: dead letter headers %v do not start with the original %v, plus 6", o, d.Headers, orig.Headers)
			}
			for key, want := range map[string]string{
				eventlog.HeaderDLQGroup: f.group, eventlog.HeaderDLQTopic: topic, eventlog.HeaderDLQPartition: "3",
			} {
				if got, _ := header(d, key); got != want {
					t.Errorf("offset %d: header %s = %q, want %q", o, key, got, want)
				}
			}
			if got, _ := header(d, eventlog.HeaderDLQError); !strings.Contains(got, wantErr[o]) {
				t.Errorf("offset %d: header %s = %q, want it to mention %q", o, eventlog.HeaderDLQError, got, wantErr[o])
			}
			ts, _ := header(d, eventlog.HeaderDLQTime)
			if at, err := time.Parse(time.RFC3339Nano, ts); err != nil || at.Before(began.Add(-time.Second)) || at.After(time.Now()) {
				t.Errorf("offset %d: header %s = %q, want a time of this test", o, eventlog.HeaderDLQTime, ts)
			}
			delete(wantErr, o)
		}
		if len(wantErr) > 0 {
			t.Errorf("no dead letter for offsets %v", wantErr)
		}
		if n := declaredCalls.Load(); n != 1 {
			t.Errorf("the record with a declared permanent error was handled %d times, want once (poison is not retried)", n)
		}
		if n := refusals.Load(); n != 1 {
			t.Errorf("the refused record was handled %d times, want once (poison is not retried)", n)
		}
		m.stop()
		if got, want := f.committed()[3], recs[len(recs)-1].Offset+1; got < want {
			t.Errorf("committed offset of partition 3 is %d, want %d", got, want)
		}
	})
}

// A dead-letter write that fails is retried like any transient error: the
// poison record is not dropped, the partition waits, and the dead letter is
// written once it can be.
func TestDeadLetterWriteFailureIsRetriedNotDropped(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(6))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	kafkatest.EnsureTopics(t, brokers)
	f := setup(t, brokers)
	dlq := eventlog.DeadLetterTopic(topic)
	from := kafkatest.From(t, brokers, dlq)
	bad := f.record(2, "bad")
	bad.Value = []byte{0, 1}
	f.produce(bad, f.record(2, "after"))

	// From here on, the only producer is the consumer writing dead letters:
	// refuse its first three writes.
	const refusals = 3
	var mu sync.Mutex
	var refused int
	var accepted time.Time
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		mu.Lock()
		defer mu.Unlock()
		if refused == refusals {
			accepted = time.Now()
			return nil, nil, false
		}
		c.KeepControl()
		refused++
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			t := kmsg.NewProduceResponseTopic()
			t.Topic, t.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				p := kmsg.NewProduceResponseTopicPartition()
				p.Partition = rp.Partition
				p.ErrorCode = kerr.InvalidRecord.Code
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp, nil, true
	})

	var j journal
	f.start(f.config(func(ctx context.Context, env eventlog.Envelope) error {
		j.add(handling{name: f.name(env), end: time.Now()})
		return nil
	}))
	testenv.WaitFor(t, 30*time.Second, "the record after the poison one", func() bool { return j.has("after") })
	mu.Lock()
	if refused != refusals || accepted.IsZero() || j.all()[0].end.Before(accepted) {
		t.Errorf("%d dead-letter writes refused, accepted at %v, next record handled at %v: want %d refused, then accepted, then the next record",
			refused, accepted, j.all()[0].end, refusals)
	}
	mu.Unlock()
	dead := kafkatest.Consume(t, brokers, from, 1, 10*time.Second)
	if off, _ := header(dead[0], eventlog.HeaderDLQOffset); off != strconv.FormatInt(bad.Offset, 10) {
		t.Errorf("dead letter of offset %s, want %d", off, bad.Offset)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := f.adm.ListEndOffsets(ctx, dlq)
	if err != nil {
		t.Fatal(err)
	}
	var written int64
	ends.Each(func(o kadm.ListedOffset) { written += o.Offset - from[dlq][o.Partition].EpochOffset().Offset })
	if written != 1 {
		t.Errorf("%d dead letters written, want exactly 1", written)
	}
}
