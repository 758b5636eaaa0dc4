// Package listing projects the catalogue's order of listing: where in the
// log each product was registered. It consumes shop.catalog.products.v1 in
// two consumer groups:
//
//   - shop.projector.listing.v<N> keeps one document, a shelf, per window
//     of [ShelfSize] offsets of each partition of the topic that holds a
//     registration: the registrations among those offsets, in offset
//     order;
//   - shop.projector.listing_heads.v<N> keeps one document per partition,
//     its head ([Heads]): the last window holding a registration, where a
//     page stops.
//
// It exists because a page of the catalogue sorted by a field is a
// whole-collection read on the embedded FerretDB, which pushes down no
// sort and no range, only top-level equality (see
// ../shared/design/READ-STORE.md). A window is found by equality on its
// number, served by an index, so a page costs the same at 100 and at
// 100,000 products, on MongoDB and on FerretDB alike. The products
// projection composes the page (products.Reader.Page).
//
// Guarantees:
//   - A shelf, and a head, remember the offset they have folded up to and
//     skip anything below it: replays and redeliveries leave them
//     unchanged.
//   - The order is a pure function of the log, the same after every
//     rebuild: by window, then time of registration (the events'
//     OccurredAt), then partition and offset. Within a window it is the
//     order of registration; windows follow one another as every
//     partition fills, so across them it is close to it.
//   - A page reads the windows up to the heads' last one: a window
//     without a registration costs it one read that finds nothing, and
//     the records after the last registration cost it nothing.
//   - A registration the outbox relay published twice (at-least-once,
//     after a crash between its produce and its delete) is on two shelves.
//     The products projection remembers which one it folded first
//     (products.View.Listed); the page lists only that one.
package listing

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"shopstream/internal/platform/eventlog"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// Version of the projection; bump it to rebuild from the log on purpose.
const Version = 1

// ShelfSize is how many offsets of a partition one shelf covers. A window
// holds at most ShelfSize registrations per partition, so a page of the
// catalogue reads one window where registrations are dense; where the
// topic holds mostly restocks and photos, it reads more windows. Measured on the
// embedded FerretDB with 1,000 products over 6 partitions, reading window
// 0 took 1.6 ms at 32, 2.5 ms at 64 and 4.9 ms at 128, and a first page
// of 20 6.0, 6.5 and 10.1 ms: 64 halves the reads of sparse stretches for
// half a millisecond.
const ShelfSize = 64

// BlockSize is how many offsets of every partition a block covers: the
// products of a block are read together, by equality on their
// listed_block field (products.View.Block), so a page of 20 needs one or
// two reads of at most BlockSize × partitions documents where
// registrations are dense, instead of a look-up per product.
const BlockSize = 4

// Position is where a registration is in the log, and when it was
// registered (its OccurredAt, to the millisecond, as BSON keeps it).
type Position struct {
	Partition int32     `bson:"partition"`
	Offset    int64     `bson:"offset"`
	At        time.Time `bson:"at"`
}

// PositionOf is the position of the record env.
func PositionOf(env eventlog.Envelope) Position {
	return Position{Partition: env.Partition, Offset: env.Offset, At: env.Meta.OccurredAt.UTC().Truncate(time.Millisecond)}
}

// Window is the window of offsets p is in.
func (p Position) Window() int64 { return windowOf(p.Offset) }

// windowOf is the window of offset.
func windowOf(offset int64) int64 { return offset / ShelfSize }

// Block is the block of offsets p is in (see BlockSize).
func (p Position) Block() int64 { return p.Offset / BlockSize }

// Compare orders positions as the listing does: by window, then time of
// registration, then partition, then offset.
func (p Position) Compare(q Position) int {
	return cmp.Or(cmp.Compare(p.Window(), q.Window()), p.At.Compare(q.At),
		cmp.Compare(p.Partition, q.Partition), cmp.Compare(p.Offset, q.Offset))
}

// Shelf is the document of one window of one partition.
type Shelf struct {
	Window    int64 `bson:"window"`
	Partition int32 `bson:"partition"`
	// Next is the offset after the last record folded: the guard that
	// makes a replayed or redelivered record change nothing.
	Next int64 `bson:"next"`
	// Products are the registrations of the window, in offset order.
	Products Entries `bson:"products"`
}

// Entries are a shelf's registrations. They are stored as one string,
// the JSON array of [product id, offset, unix ms] triples: the embedded
// FerretDB decodes every value of a document it reads at a cost of its own
// (about 6 ms for a window of 192 entries as sub-documents, against
// 0.6 ms as strings), and a page reads the entries of a whole window.
type Entries []Entry

// MarshalBSONValue implements bson.ValueMarshaler.
func (es Entries) MarshalBSONValue() (byte, []byte, error) {
	triples := make([][3]any, len(es))
	for i, e := range es {
		triples[i] = [3]any{e.ProductID, e.Offset, e.At.UnixMilli()}
	}
	raw, err := json.Marshal(triples)
	if err != nil {
		return 0, nil, err
	}
	t, data, err := bson.MarshalValue(string(raw))
	return byte(t), data, err
}

// UnmarshalBSONValue implements bson.ValueUnmarshaler.
func (es *Entries) UnmarshalBSONValue(t byte, data []byte) error {
	s, ok := bson.RawValue{Type: bson.Type(t), Value: data}.StringValueOK()
	if !ok {
		return fmt.Errorf("listing entries: BSON type %#x, want a string", t)
	}
	var triples [][3]json.RawMessage
	if err := json.Unmarshal([]byte(s), &triples); err != nil {
		return fmt.Errorf("listing entries: %w", err)
	}
	if len(triples) == 0 {
		*es = nil // as folded: a shelf without registrations has none
		return nil
	}
	out := make(Entries, len(triples))
	for i, x := range triples {
		var ms int64
		if err := errors.Join(json.Unmarshal(x[0], &out[i].ProductID), json.Unmarshal(x[1], &out[i].Offset), json.Unmarshal(x[2], &ms)); err != nil {
			return fmt.Errorf("listing entries: entry %d: %w", i, err)
		}
		out[i].At = time.UnixMilli(ms).UTC()
	}
	*es = out
	return nil
}

// Entry is one registration on a shelf.
type Entry struct {
	ProductID string    `bson:"product_id"`
	Offset    int64     `bson:"offset"`
	At        time.Time `bson:"at"` // the registration's OccurredAt, to the millisecond
}

// Projection is the listing projection.
func Projection() runner.Projection[Shelf] {
	return runner.Projection[Shelf]{
		Name:    "listing",
		Version: Version,
		Topics:  []string{schemas.TopicProducts},
		DocID: func(env eventlog.Envelope) string {
			if _, ok := env.Event.(schemas.ProductRegistered); !ok || env.Topic != schemas.TopicProducts {
				return "" // only registrations are listed
			}
			return shelfID(windowOf(env.Offset), env.Partition)
		},
		Apply:   Apply,
		Indexes: []mongo.IndexModel{{Keys: bson.D{{Key: "window", Value: 1}}}},
	}
}

// shelfID names the shelf of window w of partition p.
func shelfID(w int64, p int32) string { return fmt.Sprintf("%d-%d", w, p) }

// Apply folds one record of the catalogue topic into its shelf.
func Apply(s Shelf, env eventlog.Envelope) Shelf {
	if env.Topic != schemas.TopicProducts || env.Offset < s.Next {
		return s
	}
	s.Window, s.Partition, s.Next = windowOf(env.Offset), env.Partition, env.Offset+1
	if e, ok := env.Event.(schemas.ProductRegistered); ok &&
		!slices.ContainsFunc(s.Products, func(x Entry) bool { return x.ProductID == e.ProductID }) {
		// Clip: the appended entry never lands in the caller's array.
		pos := PositionOf(env)
		s.Products = append(slices.Clip(s.Products), Entry{ProductID: e.ProductID, Offset: pos.Offset, At: pos.At})
	}
	return s
}
