package runner_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"shopstream/internal/platform/docstore"
	"shopstream/internal/platform/kafkagroup"
	"shopstream/projectors/products"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// owned tracks the partitions a group member holds, from its callbacks.
type owned struct {
	mu sync.Mutex
	tp map[string]bool
}

func (o *owned) opts() []kgo.Opt {
	change := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			o.mu.Lock()
			defer o.mu.Unlock()
			for t, ps := range m {
				for _, p := range ps {
					o.tp[fmt.Sprintf("%s/%d", t, p)] = add
					if !add {
						delete(o.tp, fmt.Sprintf("%s/%d", t, p))
					}
				}
			}
		}
	}
	return []kgo.Opt{kgo.OnPartitionsAssigned(change(true)), kgo.OnPartitionsRevoked(change(false)), kgo.OnPartitionsLost(change(false))}
}

func (o *owned) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.tp)
}

// A projector runner that dies without leaving its group (its client
// closed with its LeaveGroup swallowed, as a SIGKILL or a lost host
// leaves it: no heartbeat, no goodbye) has its partitions taken over by
// the other member within 15 s (kafkagroup: a 10 s session, 1 s
// heartbeats), not franz-go's default 45 s, and the events then written
// to them are projected by the survivor.
func TestDeadRunnerPartitionsAreTakenOverWithin15s(t *testing.T) {
	f := setup(t)
	p := products.Projection()
	const partitions = 6
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, p.Topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	var dead atomic.Bool // the dying member's LeaveGroup goes nowhere
	cluster.ControlKey(int16(kmsg.LeaveGroup), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if !dead.Load() {
			return nil, nil, false
		}
		req := kr.(*kmsg.LeaveGroupRequest)
		resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
		for _, m := range req.Members {
			rm := kmsg.NewLeaveGroupResponseMember()
			rm.MemberID, rm.InstanceID = m.MemberID, m.InstanceID
			resp.Members = append(resp.Members, rm)
		}
		return resp, nil, true
	})
	total := partitions * len(p.Topics)

	member := func(r *runner.Runner[products.View], o *owned) (*kgo.Client, context.CancelFunc, chan error) {
		cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}, r.ClientOpts()...), o.opts()...)...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, cl) }()
		return cl, cancel, done
	}
	waitFor := func(what string, within time.Duration, ok func() bool) time.Duration {
		t.Helper()
		began := time.Now()
		for !ok() {
			if time.Since(began) > within {
				t.Fatalf("%s: not within %v", what, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(began)
	}

	a, b := &owned{tp: map[string]bool{}}, &owned{tp: map[string]bool{}}
	clA, stopA, doneA := member(f.r, a)
	waitFor("the first member holds every partition", 30*time.Second, func() bool { return a.count() == total })
	rB := runner.New(p, f.serde, docstore.New(f.db), slog.New(slog.NewTextHandler(io.Discard, nil)))
	clB, stopB, doneB := member(rB, b)
	t.Cleanup(func() {
		stopB()
		<-doneB
		clB.Close()
	})
	waitFor("the second member is handed its share", 30*time.Second, func() bool {
		return a.count() > 0 && b.count() > 0 && a.count()+b.count() == total
	})
	t.Logf("before the death: first member %d partitions, second %d", a.count(), b.count())

	dead.Store(true)
	stopA()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	clA.Close() // no heartbeat from now on, and its LeaveGroup is swallowed
	died := time.Now()

	// Events written to every partition of the products topic after the
	// death, some of them the dead member's.
	prod, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range partitions {
		id := fmt.Sprintf("after-death-%d", i)
		rec := f.record(t, 0, id, 1, schemas.ProductRegistered{ProductID: id, Title: id, PriceCents: 100, Currency: "EUR", InitialStock: 1})
		rec.Partition, rec.Offset = int32(i), 0
		if err := prod.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	took := waitFor("the survivor holds every partition", 15*time.Second, func() bool { return b.count() == total })
	t.Logf("takeover: the survivor holds all %d partitions %v after the death (session timeout %v, heartbeat %v)",
		total, took.Round(time.Millisecond), kafkagroup.SessionTimeout, kafkagroup.HeartbeatInterval)
	waitFor("every event written after the death is projected", 15*time.Second-time.Since(died), func() bool {
		return len(f.docs(t)) == partitions
	})
	t.Logf("read model fresh again %v after the death", time.Since(died).Round(time.Millisecond))
}
