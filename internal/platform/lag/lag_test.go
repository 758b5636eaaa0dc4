package lag_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/lag"
	"shopstream/internal/testinfra/kafkatest"
)

// A group that committed part of a topic lags by the rest; a known group
// that has never run lags by every record of its topics; groups without
// the shop's prefix are left out.
func TestMeasure(t *testing.T) {
	kafkatest.ForEachBroker(t, func(t *testing.T, brokers []string) {
		ctx := context.Background()
		cl := kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		adm := kadm.NewClient(cl)
		topic := "lag-test-" + uuid.NewString()
		if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			r := &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte(fmt.Sprint(i))}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		ran, never, other := "shop.test."+uuid.NewString(), "shop.test.never."+uuid.NewString(), "other."+uuid.NewString()
		commit := kadm.Offsets{}
		commit.Add(kadm.Offset{Topic: topic, Partition: 0, At: 3})
		for _, g := range []string{ran, other} {
			if _, err := adm.CommitOffsets(ctx, g, commit); err != nil {
				t.Fatal(err)
			}
		}
		groups, err := lag.Measure(ctx, adm, map[string][]string{ran: {topic}, never: {topic}})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]lag.Group{}
		for _, g := range groups {
			got[g.Group] = g
		}
		if _, ok := got[other]; ok {
			t.Errorf("group %s without the shop's prefix is listed", other)
		}
		// ran: partition 0 committed 3 of 5, partition 1 nothing of 5.
		if g := got[ran]; g.Lag != 2+5 || len(g.Partitions) != 2 || g.Partitions[0].Committed != 3 || g.Partitions[1].Committed != -1 {
			t.Errorf("%s: %+v, want lag 7 over 2 partitions", ran, g)
		}
		if g := got[never]; g.Lag != 10 {
			t.Errorf("%s (never ran): %+v, want lag 10", never, g)
		}
	})
}
