package runner_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/event"

	"shopstream/projectors/products"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// A reader's reads that find nothing resolve its alias again at most once
// per ReaderMissRecheck, not once each; and a product that exists only in
// the collection the alias was switched to is found by a read made after
// that interval.
func TestReaderMissesResolveTheAliasAtMostOncePerRecheck(t *testing.T) {
	var aliasReads atomic.Int64
	f := setupWatched(t, &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if coll, _ := e.Command.Lookup("find").StringValueOK(); coll == runner.AliasCollection {
			aliasReads.Add(1)
		}
	}})
	ctx := context.Background()
	register := func(offset int64, id string) *kgo.Record {
		return f.record(t, offset, id, 1, schemas.ProductRegistered{ProductID: id, Title: id, PriceCents: 100, Currency: "EUR", InitialStock: 1})
	}
	if err := f.r.Apply(ctx, []*kgo.Record{register(0, "a-product")}); err != nil {
		t.Fatal(err)
	}
	p := products.Projection()
	rd := runner.NewReader(f.db, p)
	if _, found, err := rd.Get(ctx, "a-product"); err != nil || !found {
		t.Fatalf("a-product: found %v, %v", found, err)
	}
	before := aliasReads.Load()
	began := time.Now()
	const misses = 20
	for i := range misses {
		if _, found, err := rd.Get(ctx, fmt.Sprintf("absent-%d", i)); err != nil || found {
			t.Fatalf("absent-%d: found %v, %v", i, found, err)
		}
	}
	took := time.Since(began)
	// One resolve per ReaderMissRecheck elapsed, and one for the interval
	// under way; resolving on every miss would make it misses.
	allowed := int64(took/runner.ReaderMissRecheck) + 1
	got := aliasReads.Load() - before
	t.Logf("%d misses in %v read the alias %d times (at most %d allowed)", misses, took.Round(time.Millisecond), got, allowed)
	if allowed >= misses {
		t.Skipf("the misses took %v: too slow to tell a resolve per miss from one per %v", took, runner.ReaderMissRecheck)
	}
	if got > allowed {
		t.Fatalf("%d misses read the alias %d times in %v; want at most %d", misses, got, took, allowed)
	}

	// The alias moves to a rebuilt collection that alone holds b-product.
	next := p.Collection() + "_rtest"
	into := f.r.Into(next)
	if err := into.Apply(ctx, []*kgo.Record{register(0, "a-product"), register(1, "b-product")}); err != nil {
		t.Fatal(err)
	}
	if err := into.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	aliases := runner.NewAliases(f.db)
	if err := aliases.BeginSwitch(ctx, p.Collection(), p.Collection(), next, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := aliases.CommitSwitch(ctx, p.Collection(), next); err != nil {
		t.Fatal(err)
	}
	time.Sleep(runner.ReaderMissRecheck)
	if _, found, err := rd.Get(ctx, "b-product"); err != nil || !found {
		t.Fatalf("b-product, after the switch and %v: found %v, %v", runner.ReaderMissRecheck, found, err)
	}
}
