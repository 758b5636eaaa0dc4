package runner_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"

	"shopstream/projectors/products"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// reviewLog is a catalogue of n products with reviews reviews each, as
// batches of a few records, in log order.
func (f *fixture) reviewLog(t *testing.T, n, reviews int) [][]*kgo.Record {
	var recs []*kgo.Record
	for i := range n {
		id := string(rune('a'+i)) + "-product"
		recs = append(recs, f.record(t, int64(len(recs)), id, 1, schemas.ProductRegistered{ProductID: id, Title: id, PriceCents: 100, Currency: "EUR", InitialStock: 5}))
	}
	for v := 1; v <= reviews; v++ {
		for i := range n {
			id := string(rune('a'+i)) + "-product"
			recs = append(recs, f.record(t, int64(len(recs)), id, int64(v), schemas.ReviewAdded{ReviewID: "r", ProductID: id, CustomerID: "c", Rating: int32(1 + v%5)}))
		}
	}
	var batches [][]*kgo.Record
	for lo := 0; lo < len(recs); lo += 7 {
		batches = append(batches, recs[lo:min(lo+7, len(recs))])
	}
	return batches
}

// Two runners folding the same log into the same collection at once (a
// partition handed over mid-batch, or a rebuild catching up beside the
// live runner) leave every document as one runner alone would: their
// conflicting writes are detected and folded again, none is lost.
func TestConcurrentRunnersLoseNothing(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	const n, reviews = 5, 30
	batches := f.reviewLog(t, n, reviews)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			for _, b := range batches {
				if err := f.r.ApplyWithRetry(ctx, b); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	docs := f.docs(t)
	if len(docs) != n {
		t.Fatalf("%d documents, want %d", len(docs), n)
	}
	for _, d := range docs {
		if d["rating_count"] != int64(reviews) {
			t.Errorf("%s: %v reviews, want %d", d["_id"], d["rating_count"], reviews)
		}
	}
}

// While a rebuild switches the alias, the live runner holds its batch;
// once the switch is committed the batch goes into the new collection. A
// switch past its deadline no longer holds anyone.
func TestRunnerHoldsWritesDuringASwitch(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	aliases := runner.NewAliases(f.db)
	base := products.Projection().Collection()
	batches := f.reviewLog(t, 1, 10)
	if err := aliases.BeginSwitch(ctx, base, base, "products_next", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := aliases.BeginSwitch(ctx, base, base, "products_other", time.Now().Add(time.Minute)); !errors.Is(err, runner.ErrSwitched) {
		t.Fatalf("a second switch at once: %v, want ErrSwitched", err)
	}
	done := make(chan error, 1)
	go func() { done <- f.r.Apply(ctx, batches[0]) }()
	select {
	case err := <-done:
		t.Fatalf("the runner wrote during the switch (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if target, _ := aliases.Resolve(ctx, base); target != base {
		t.Fatalf("readers moved before the commit: %s", target)
	}
	if err := aliases.CommitSwitch(ctx, base, "products_next"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, _ := f.db.Collection("products_next").CountDocuments(ctx, bson.D{}); n != 1 {
		t.Fatalf("the held batch wrote %d documents into the new collection, want 1", n)
	}
	if target, _ := aliases.Resolve(ctx, base); target != "products_next" {
		t.Fatalf("alias points at %s after the commit", target)
	}

	// A switch whose deadline passed holds no runner and cannot commit.
	if err := aliases.BeginSwitch(ctx, base, "products_next", "products_late", time.Now().Add(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := f.r.Apply(ctx, batches[1]); err != nil {
		t.Fatal(err)
	}
	if err := aliases.CommitSwitch(ctx, base, "products_late"); !errors.Is(err, runner.ErrSwitched) {
		t.Fatalf("commit after the deadline: %v, want ErrSwitched", err)
	}
	if err := aliases.AbortSwitch(ctx, base, "products_late"); err != nil {
		t.Fatal(err)
	}
	if target, _ := aliases.Resolve(ctx, base); target != "products_next" {
		t.Fatalf("alias points at %s after the abort", target)
	}
}
