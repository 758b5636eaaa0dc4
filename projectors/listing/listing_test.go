package listing

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"shopstream/internal/platform/eventlog"
	"shopstream/projectors/runner/runnertest"
	"shopstream/schemas"
)

// catalogueLog is a log of the catalogue topic over partitions, offsets
// numbered per partition as Kafka does.
type catalogueLog struct {
	next map[int32]int64
	envs []eventlog.Envelope
}

func (l *catalogueLog) add(p int32, ev schemas.Event, productID string) {
	if l.next == nil {
		l.next = map[int32]int64{}
	}
	l.envs = append(l.envs, eventlog.Envelope{Topic: schemas.TopicProducts, Partition: p, Offset: l.next[p], Event: ev,
		Meta: eventlog.Metadata{EventID: fmt.Sprintf("e%d", len(l.envs)), Type: ev.EventType(), AggregateID: productID}})
	l.next[p]++
}

func (l *catalogueLog) register(p int32, id string) {
	l.add(p, schemas.ProductRegistered{ProductID: id, Title: "T", PriceCents: 100, Currency: "EUR"}, id)
}

func (l *catalogueLog) restock(p int32, id string) {
	l.add(p, schemas.ProductRestocked{ProductID: id, Quantity: 1}, id)
}

// A log of two partitions: registrations, then a long run of restocks
// alone in partition 0 (whole windows without a registration), a
// registration published twice, and registrations after all that.
func sampleLog() *catalogueLog {
	var l catalogueLog
	for i := range 2 * (ShelfSize - 10) { // window 0 of both partitions
		l.register(int32(i%2), fmt.Sprintf("p%03d", i))
	}
	for range 3 * ShelfSize {
		l.restock(0, "p000")
	}
	l.register(1, "dup")
	l.register(1, "dup") // the relay's redelivery, in the same window
	for i := range 10 {  // the end of window 3 of partition 0
		l.register(0, fmt.Sprintf("q%03d", i))
	}
	return &l
}

func TestShelvesListEachRegistrationOnce(t *testing.T) {
	l := sampleLog()
	shelves := runnertest.Fold(Apply, Projection().DocID, l.envs)
	// Partition 0: S-10 registrations, 3S restocks, 10 registrations: 4S
	// offsets, windows 0-3, registrations in 0 and 3. Partition 1: S-8
	// offsets, window 0.
	want := []string{"0-0", "0-1", "3-0"}
	if got := slices.Sorted(maps.Keys(shelves)); !slices.Equal(got, want) {
		t.Fatalf("shelves %v, want %v (restocks make none)", got, want)
	}
	for id, s := range shelves {
		if shelfID(s.Window, s.Partition) != id {
			t.Errorf("shelf %s says window %d partition %d", id, s.Window, s.Partition)
		}
	}
	if n := len(shelves["0-0"].Products); n != ShelfSize-10 {
		t.Errorf("shelf 0-0 lists %d products, want %d", n, ShelfSize-10)
	}
	p1 := shelves["0-1"].Products
	if len(p1) != ShelfSize-9 || p1[len(p1)-1].ProductID != "dup" || p1[len(p1)-1].Offset != ShelfSize-10 {
		t.Errorf("shelf 0-1 lists %d products, last %+v; want %d, dup once at offset %d", len(p1), p1[len(p1)-1], ShelfSize-9, ShelfSize-10)
	}
	if s := shelves["3-0"]; len(s.Products) != 10 || s.Products[0].Offset != 4*ShelfSize-10 || s.Next != 4*ShelfSize {
		t.Errorf("shelf 3-0: %+v", s)
	}
}

// Each partition's head knows its last window holding a registration,
// whatever follows it.
func TestHeadsKnowTheLastListedWindow(t *testing.T) {
	l := sampleLog()
	for range 2 * ShelfSize { // restocks after partition 1's last registration
		l.restock(1, "p001")
	}
	heads := runnertest.Fold(ApplyHead, Heads().DocID, l.envs)
	want := map[string]Head{
		"0": {Partition: 0, Next: 4 * ShelfSize, Listed: true, LastWindow: 3},
		"1": {Partition: 1, Next: 3*ShelfSize - 8, Listed: true, LastWindow: 0},
	}
	if !reflect.DeepEqual(heads, want) {
		t.Fatalf("heads %+v, want %+v", heads, want)
	}
	runnertest.Idempotent(t, ApplyHead, Heads().DocID, l.envs)
}

func TestApplyIsIdempotent(t *testing.T) {
	runnertest.Idempotent(t, Apply, Projection().DocID, sampleLog().envs)
}

func TestPositionsSortByWindowThenTimeThenPartitionThenOffset(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 11, 27, 9, 0, s, 0, time.UTC) }
	ps := []Position{{1, ShelfSize, at(1)}, {0, ShelfSize + 1, at(0)}, {1, 3, at(1)}, {0, 5, at(9)}, {0, 2, at(1)}, {2, 0, at(0)}}
	slices.SortFunc(ps, Position.Compare)
	want := []Position{{2, 0, at(0)}, {0, 2, at(1)}, {1, 3, at(1)}, {0, 5, at(9)}, {0, ShelfSize + 1, at(0)}, {1, ShelfSize, at(1)}}
	if !slices.Equal(ps, want) {
		t.Fatalf("%v, want %v", ps, want)
	}
}

// A shelf's entries survive BSON, stored as one string.
func TestEntriesRoundTripThroughBSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 0, 1, 234_000_000, time.UTC)
	in := Shelf{Window: 3, Partition: 2, Next: 200, Products: Entries{{"p\"1,;", 192, at}, {"p2", 199, at.Add(time.Millisecond)}}}
	raw, err := bson.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := bson.Raw(raw).LookupErr("products"); err != nil || v.Type != bson.TypeString {
		t.Fatalf("products stored as %v (%v), want a string", v.Type, err)
	}
	var out Shelf
	if err := bson.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("%+v\nbecame %+v", in, out)
	}
	var empty Shelf
	if raw, err = bson.Marshal(Shelf{}); err != nil || bson.Unmarshal(raw, &empty) != nil || empty.Products != nil {
		t.Fatalf("an empty shelf: %v, %+v", err, empty)
	}
}
