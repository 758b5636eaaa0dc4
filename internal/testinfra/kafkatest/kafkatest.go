// Package kafkatest runs one test body against every Kafka backend a test
// run has: always an embedded kfake cluster, and real Apache Kafka when
// SHOP_TEST_KAFKA_BROKERS names its brokers (comma-separated), or else when
// SHOP_TEST_BACKEND=testcontainers (a Kafka container shared by the test
// binary, see internal/testinfra/testbackend). Without either, the real-Kafka subtest
// skips with that reason, never passes silently; with testcontainers and no
// Docker engine it skips saying so. Tests on real Kafka share its topics
// with earlier runs and other tests, so they read from the end offsets they
// saw before producing (see From).
package kafkatest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/devinfra/embedded/kafka"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/testinfra/testbackend"
)

// EnvBrokers is the variable that selects the real-Kafka integration tests.
const EnvBrokers = "SHOP_TEST_KAFKA_BROKERS"

// RealBrokers returns the brokers named by SHOP_TEST_KAFKA_BROKERS; when it
// is unset and SHOP_TEST_BACKEND=testcontainers, those of the shared Kafka
// container (testbackend.Kafka, which skips t where no Docker engine
// answers); otherwise it skips t.
func RealBrokers(t testing.TB) []string {
	t.Helper()
	if v := os.Getenv(EnvBrokers); v != "" {
		return strings.Split(v, ",")
	}
	if testbackend.Containers(t) {
		return testbackend.Kafka(t)
	}
	t.Skip(EnvBrokers + " is unset: real Apache Kafka test skipped (.ci/run installs Kafka and sets it)")
	return nil
}

// Embedded starts a fresh in-memory kfake cluster for t.
func Embedded(t testing.TB) []string {
	t.Helper()
	c, err := kafka.Start(kafka.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.Brokers()
}

// ForEachBroker runs fn as subtest "kfake" on a fresh embedded cluster and
// as subtest "kafka" on real Apache Kafka, with the event-log topics
// created on both.
func ForEachBroker(t *testing.T, fn func(t *testing.T, brokers []string)) {
	t.Run("kfake", func(t *testing.T) {
		b := Embedded(t)
		EnsureTopics(t, b)
		fn(t, b)
	})
	t.Run("kafka", func(t *testing.T) {
		b := RealBrokers(t)
		EnsureTopics(t, b)
		fn(t, b)
	})
}

// Client returns a client for brokers, closed at the end of t.
func Client(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// EnsureTopics creates the event-log topics on brokers.
func EnsureTopics(t testing.TB, brokers []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eventlog.EnsureTopics(ctx, kadm.NewClient(Client(t, brokers)), -1); err != nil {
		t.Fatal(err)
	}
}

// From returns the current end offset of every partition of topics, to
// consume only what a test produces after this call.
func From(t testing.TB, brokers []string, topics ...string) map[string]map[int32]kgo.Offset {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(Client(t, brokers)).ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]kgo.Offset{}
		}
		out[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
	})
	return out
}

// Consume reads n records from the given starting offsets, failing t if
// they do not all arrive within the timeout.
func Consume(t testing.TB, brokers []string, from map[string]map[int32]kgo.Offset, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	return ConsumeWhere(t, brokers, from, n, timeout, nil)
}

// CountTimeout is how long CountWhere waits for the records it expects.
const CountTimeout = 60 * time.Second

// CountWhere counts the records from `from` that keep accepts: it reads
// until want of them have arrived (waiting at most CountTimeout), then for
// settle more. It checks that something was written want times, and not
// again: a slow broker or a loaded machine does not make it miss the
// records expected, and a duplicate that follows them within settle is
// counted.
func CountWhere(t testing.TB, brokers []string, from map[string]map[int32]kgo.Offset, want int, settle time.Duration, keep func(*kgo.Record) bool) int {
	t.Helper()
	cl := Client(t, brokers, kgo.ConsumePartitions(from))
	ctx, cancel := context.WithTimeout(context.Background(), CountTimeout)
	defer cancel()
	n := 0
	settled := false
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if keep(r) {
				n++
			}
		})
		if n >= want && !settled {
			settled = true
			var stop context.CancelFunc
			ctx, stop = context.WithTimeout(context.Background(), settle)
			defer stop()
		}
	}
	return n
}

// ConsumeWhere is Consume counting only the records keep accepts (all when
// keep is nil), for topics that other tests' shops on a shared broker also
// write to, such as a dead-letter topic.
func ConsumeWhere(t testing.TB, brokers []string, from map[string]map[int32]kgo.Offset, n int, timeout time.Duration, keep func(*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	cl := Client(t, brokers, kgo.ConsumePartitions(from))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the timeout", len(out), n)
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !kerr.IsRetriable(err) {
				t.Fatalf("fetch %s/%d: %v", topic, p, err)
			}
			t.Logf("fetch %s/%d: %v (retrying)", topic, p, err)
		})
		for _, r := range fs.Records() {
			if keep == nil || keep(r) {
				out = append(out, r)
			}
		}
	}
	return out
}
