package products_test

import (
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/internal/devinfra/embedded/ferret/ferrettest"
	"shopstream/internal/platform/docstore"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/testinfra/eventlogtest"
	"shopstream/projectors/listing"
	"shopstream/projectors/products"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// catalogue builds records of the catalogue topic over partitions, with
// offsets numbered per partition as Kafka does.
type catalogue struct {
	t     *testing.T
	serde *eventlog.Serde
	next  map[int32]int64
	recs  []*kgo.Record
	first map[string]listing.Position // each product's first registration
}

// t0 is when the first record's event occurred; each next one, a second
// later.
var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

// at is when the next record's event occurred.
func (c *catalogue) at() time.Time { return t0.Add(time.Duration(len(c.recs)) * time.Second) }

func (c *catalogue) add(p int32, id string, version int64, ev schemas.Event) {
	c.t.Helper()
	value, err := c.serde.Encode(context.Background(), schemas.TopicProducts, ev)
	if err != nil {
		c.t.Fatal(err)
	}
	m := eventlog.Metadata{EventID: uuid.NewString(), Type: ev.EventType(), AggregateID: id, AggregateVersion: version, OccurredAt: c.at()}
	c.recs = append(c.recs, &kgo.Record{Topic: schemas.TopicProducts, Partition: p, Offset: c.next[p], Key: []byte(id), Value: value, Headers: m.Headers()})
	c.next[p]++
}

func (c *catalogue) register(p int32, id string) {
	if _, ok := c.first[id]; !ok {
		c.first[id] = listing.Position{Partition: p, Offset: c.next[p], At: c.at()}
	}
	c.add(p, id, 1, schemas.ProductRegistered{ProductID: id, Title: "T " + id, PriceCents: 100, Currency: "EUR", InitialStock: 1})
}

// GET /products' pages list every projected product once, in listing
// order, across windows of restocks alone and a registration the relay
// published twice, and tell a cursor that is not a listed product.
func TestPagesListEveryProductOnceInListingOrder(t *testing.T) {
	ctx := context.Background()
	serde, _ := eventlogtest.Serde(t)
	// The windows a page reads, watched on the wire.
	var maxWindow atomic.Int64
	watch := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		coll, _ := e.Command.Lookup("find").StringValueOK()
		if w, ok := e.Command.Lookup("filter", "window").AsInt64OK(); ok && strings.HasPrefix(coll, "listing_v") && w > maxWindow.Load() {
			maxWindow.Store(w)
		}
	}}
	db := ferrettest.Connect(t, ferrettest.Start(t, ""), options.Client().SetMonitor(watch)).Database("shop")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &catalogue{t: t, serde: serde, next: map[int32]int64{}, first: map[string]listing.Position{}}
	var ids []string
	for i := range 90 {
		id := uuid.NewString()
		ids = append(ids, id)
		c.register(int32(i%3), id)
	}
	for range 3 * listing.ShelfSize { // windows 1 to 3 of partition 0 list nothing
		c.add(0, ids[0], 2, schemas.ProductRestocked{ProductID: ids[0], Quantity: 1})
	}
	for range 40 {
		id := uuid.NewString()
		ids = append(ids, id)
		c.register(0, id)
	}
	for range listing.ShelfSize { // partition 1 reaches window 1 ...
		c.add(1, ids[1], 2, schemas.PhotoWasAdded{ProductID: ids[1], PhotoURL: "https://img.example/x.jpg"})
	}
	c.register(1, ids[4]) // ... where the relay publishes ids[4]'s registration again

	// Both projections fold the log; the listing also holds a product the
	// products projection has not folded yet.
	pr := runner.New(products.Projection(), serde, docstore.New(db), log)
	lr := runner.New(listing.Projection(), serde, docstore.New(db), log)
	hr := runner.New(listing.Heads(), serde, docstore.New(db), log)
	if err := pr.Apply(ctx, c.recs); err != nil {
		t.Fatal(err)
	}
	late := uuid.NewString()
	c.register(2, late)
	for range 5 * listing.ShelfSize { // partition 2 ends with windows of restocks alone
		c.add(2, ids[2], 2, schemas.ProductRestocked{ProductID: ids[2], Quantity: 1})
	}
	last := max(c.first[ids[len(ids)-1]].Window(), c.first[late].Window()) // the last window holding a registration
	for lo := 0; lo < len(c.recs); lo += 100 {
		if err := errors.Join(lr.Apply(ctx, c.recs[lo:min(lo+100, len(c.recs))]), hr.Apply(ctx, c.recs[lo:min(lo+100, len(c.recs))])); err != nil {
			t.Fatal(err)
		}
	}

	want := slices.Clone(ids)
	// Listing order, by its definition: by window of offsets, then time of
	// registration (every record here has a time of its own).
	slices.SortFunc(want, func(a, b string) int {
		pa, pb := c.first[a], c.first[b]
		return cmp.Or(cmp.Compare(pa.Offset/listing.ShelfSize, pb.Offset/listing.ShelfSize), pa.At.Compare(pb.At))
	})
	r := products.NewReader(db)
	var got []string
	after, pages := "", 0
	for {
		page, more, err := r.Page(ctx, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, p := range page {
			got = append(got, p.ID)
		}
		if !more {
			break
		}
		if len(page) != 7 || pages > len(ids) {
			t.Fatalf("page %d: %d products, more", pages, len(page))
		}
		after = page[len(page)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d products in %d pages, want %d in listing order:\ngot  %v\nwant %v", len(got), pages, len(want), got, want)
	}
	if pages != (len(ids)+6)/7 {
		t.Errorf("%d pages for %d products by 7", pages, len(ids))
	}
	if maxWindow.Load() != last {
		t.Errorf("the pages read windows up to %d; the last holding a registration is %d", maxWindow.Load(), last)
	}

	for _, cursor := range []string{uuid.NewString(), late} {
		if _, _, err := r.Page(ctx, cursor, 7); !errors.Is(err, products.ErrNotListed) {
			t.Errorf("after %s: %v, want ErrNotListed", cursor, err)
		}
	}
}
