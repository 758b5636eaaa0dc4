package schemas_test

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"shopstream/schemas"
	"shopstream/schemas/schemastest"
)

// edgeEvents are values beyond the samples where a typed codec could part
// from goavro: empty and nil arrays, empty strings, extreme integers,
// timestamps before 1970, with milliseconds, below the millisecond or in
// another zone, the zero time, non-ASCII text, an optional field set to "".
func edgeEvents() []schemas.Event {
	empty := ""
	paris := time.FixedZone("CET", 3600)
	return []schemas.Event{
		schemas.OrderPlaced{OrderID: "o", CustomerID: "c", PaymentMethod: "card", Items: nil},
		schemas.OrderPlaced{Items: []schemas.OrderLine{}},
		schemas.OrderPlaced{OrderID: "o", Items: []schemas.OrderLine{{ProductID: "", Quantity: math.MinInt32, UnitPriceCents: math.MaxInt64}, {Quantity: math.MaxInt32, UnitPriceCents: math.MinInt64}}, TotalCents: -1},
		schemas.OrderPlaced{OrderID: "o", Items: slices.Repeat([]schemas.OrderLine{{ProductID: "p", Quantity: 1, UnitPriceCents: 1}}, 250)}, // beyond hamba's default block of 100
		schemas.ProductRegistered{},
		schemas.ProductRegistered{ProductID: "p", Title: "Écharpe « supporter » ⚽ 日本", PriceCents: math.MaxInt64, Currency: "EUR", InitialStock: -1, PhotoURL: &empty},
		schemas.EmailSent{},
		schemas.EmailSent{OrderID: "o", SentAt: time.Date(1969, 12, 31, 23, 59, 59, 500e6, time.UTC)},
		schemas.EmailSent{OrderID: "o", SentAt: time.Date(2026, 11, 27, 9, 0, 0, 123456789, time.UTC)},
		schemas.EmailSent{OrderID: "o", SentAt: time.Date(2026, 11, 27, 10, 0, 0, 7e6, paris)},
		schemas.EmailRequested{AttachmentRef: &empty},
		schemas.ReviewAdded{Rating: math.MinInt32, Comment: string(bytes.Repeat([]byte("é"), 700))}, // over one 1 KiB slab of hamba's reader
		schemas.StockReceived{CatalogVersion: math.MinInt64},
	}
}

// TestTypedPathAndGoavroAgree holds the typed path (hamba on the Go
// structs: Version.Encode, Version.DecodeTyped) to the generic one (goavro
// on Catalog.Native's value, DecodeGeneric): the same bytes for every sample
// of schemastest.Samples and every edge value, each path reading the other's
// bytes to the same event, and the sample itself for the samples.
func TestTypedPathAndGoavroAgree(t *testing.T) {
	cat := load(t)
	check := func(ev schemas.Event, isSample bool) {
		t.Helper()
		v, native, err := cat.Native(ev)
		if err != nil {
			t.Fatalf("%T: %v", ev, err)
		}
		if !v.Typed() {
			t.Fatalf("%s: the current version is not read by the typed path", v.Type.Name)
		}
		generic, err := v.Codec.BinaryFromNative(nil, native)
		if err != nil {
			t.Fatalf("%s: goavro encode: %v", v.Type.Name, err)
		}
		typed, err := v.Encode(nil, ev)
		if err != nil {
			t.Fatalf("%s: typed encode: %v", v.Type.Name, err)
		}
		if !bytes.Equal(typed, generic) {
			t.Errorf("%s: different bytes for %+v\ntyped  %x\ngoavro %x", v.Type.Name, ev, typed, generic)
			return
		}
		prefixed, err := v.Encode([]byte{0, 1, 2, 3, 4}, ev)
		if err != nil || !bytes.Equal(prefixed, append([]byte{0, 1, 2, 3, 4}, generic...)) {
			t.Errorf("%s: with a prefix, typed encode writes %x (%v)", v.Type.Name, prefixed, err)
		}
		fromTyped, err := v.DecodeTyped(generic)
		if err != nil {
			t.Fatalf("%s: typed decode of goavro's bytes: %v", v.Type.Name, err)
		}
		fromGeneric, err := v.DecodeGeneric(typed)
		if err != nil {
			t.Fatalf("%s: goavro decode of the typed bytes: %v", v.Type.Name, err)
		}
		// nil and empty arrays are the same Avro value; goavro's path reads
		// an empty slice, the typed path nil or empty.
		if !reflect.DeepEqual(normalize(fromTyped), normalize(fromGeneric)) {
			t.Errorf("%s: the paths read %x differently\ntyped   %#v\ngeneric %#v", v.Type.Name, generic, fromTyped, fromGeneric)
		}
		if isSample && (!reflect.DeepEqual(fromTyped, ev) || !reflect.DeepEqual(fromGeneric, ev)) {
			t.Errorf("%s: round trip\ntyped   %#v\ngeneric %#v\nwant    %#v", v.Type.Name, fromTyped, fromGeneric, ev)
		}
		if back, err := v.Decode(generic); err != nil || !reflect.DeepEqual(back, fromTyped) {
			t.Errorf("%s: Decode reads %#v (%v), DecodeTyped %#v", v.Type.Name, back, err, fromTyped)
		}
	}
	seen := map[string]bool{}
	for _, ev := range schemastest.Samples() {
		check(ev, true)
		seen[ev.EventType()] = true
	}
	for _, ev := range edgeEvents() {
		check(ev, false)
	}
	for _, ty := range cat.Types() {
		if !seen[ty.Name] {
			t.Errorf("no sample for %s: add one to schemastest.Samples", ty.Name)
		}
	}
}

// normalize turns the nil order lines of an OrderPlaced into an empty slice.
func normalize(ev schemas.Event) schemas.Event {
	if o, ok := ev.(schemas.OrderPlaced); ok && o.Items == nil {
		o.Items = []schemas.OrderLine{}
		return o
	}
	return ev
}

// oldRecords are generic values of the older versions of each type, written
// by goavro with that version's codec as an older build did.
func oldRecords() map[string]map[int][]map[string]any {
	return map[string]map[int][]map[string]any{
		"shop.customers.CustomerSignedUp": {
			1: {{"customer_id": "c-1", "email": "zizou@example.org", "name": "Zinédine"}},
		},
		"shop.notifications.EmailRequested": {
			1: {{"order_id": "o-1", "to": "zizou@example.org", "subject": "Your invoice", "template": "invoice", "attachment_ref": goavro.Union("string", "x.pdf")},
				{"order_id": "o-2", "to": "a@b.c", "subject": "s", "template": "t", "attachment_ref": nil}},
		},
		"shop.notifications.EmailSent": {
			1: {{"order_id": "o-1", "to": "zizou@example.org", "message_id": "<m1@shop>", "sent_at": time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}},
		},
		"shop.payments.PaymentRequested": {
			1: {
				{"order_id": "o-1", "method": "card", "amount_cents": int64(8999)},
				{"order_id": "o-2", "method": "sepa", "amount_cents": int64(math.MaxInt64)},
			},
		},
		"shop.catalog.ProductRegistered": {
			1: {
				{"product_id": "p-9", "title": "Maillot", "price_cents": int64(100), "quantity": int32(3), "photo": goavro.Union("string", "http://x/y.jpg")},
				{"product_id": "p-10", "title": "", "price_cents": int64(math.MaxInt64), "quantity": int32(math.MinInt32), "photo": nil},
			},
			2: {
				{"product_id": "p-9", "title": "Maillot", "price_cents": int64(100), "currency": "USD", "initial_stock": int32(3), "photo_url": goavro.Union("string", "http://x/y.jpg")},
				{"product_id": "p-11", "title": "Écharpe", "price_cents": int64(0), "currency": "EUR", "initial_stock": int32(0), "photo_url": nil},
			},
		},
	}
}

// TestResolutionReadsOldRecordsAsTheUpcasters holds the claim of every
// older version a type declares resolvable: hamba's schema resolution
// (current schema as reader) reads its records into the same event as
// goavro, the upcaster chain and ToEvent. An older version that is not
// resolvable must still decode, by the generic path.
func TestResolutionReadsOldRecordsAsTheUpcasters(t *testing.T) {
	cat := load(t)
	records := oldRecords()
	for _, ty := range cat.Types() {
		for _, v := range ty.Versions() {
			if v == ty.Current() {
				continue
			}
			natives := records[ty.Name][v.Number]
			if len(natives) == 0 {
				t.Errorf("%s v%d: no old record to check it with: add some to oldRecords", ty.Name, v.Number)
				continue
			}
			for _, native := range natives {
				bin, err := v.Codec.BinaryFromNative(nil, native)
				if err != nil {
					t.Fatalf("%s v%d: goavro encode %v: %v", ty.Name, v.Number, native, err)
				}
				generic, err := v.DecodeGeneric(bin)
				if err != nil {
					t.Fatalf("%s v%d: generic decode: %v", ty.Name, v.Number, err)
				}
				got, err := v.Decode(bin)
				if err != nil {
					t.Fatalf("%s v%d: decode: %v", ty.Name, v.Number, err)
				}
				if v.Typed() {
					if got, err = v.DecodeTyped(bin); err != nil {
						t.Fatalf("%s v%d: typed decode by resolution: %v", ty.Name, v.Number, err)
					}
				}
				if !reflect.DeepEqual(got, generic) {
					t.Errorf("%s v%d (typed %v): %v reads as\n%#v\nthe upcasters give\n%#v", ty.Name, v.Number, v.Typed(), native, got, generic)
				}
			}
		}
	}
	// ProductRegistered declares both of its older versions resolvable.
	pr, _ := cat.Type("shop.catalog.ProductRegistered")
	for _, n := range []int{1, 2} {
		if v, _ := pr.Version(n); !v.Typed() {
			t.Errorf("ProductRegistered v%d is not read by the typed path", n)
		}
	}
}

// The typed path refuses what goavro refuses: a truncated record, trailing
// bytes, a union branch that does not exist, an invalid length.
func TestTypedDecodeRefusesBadRecords(t *testing.T) {
	cat := load(t)
	for _, ev := range schemastest.Samples() {
		v, bin, err := cat.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		bad := map[string][]byte{
			"empty":          {},
			"truncated":      bin[:len(bin)-1],
			"trailing bytes": append(slices.Clone(bin), 0),
		}
		for name, b := range bad {
			if _, err := v.DecodeTyped(b); err == nil {
				t.Errorf("%s, %s: typed decode accepts %x", v.Type.Name, name, b)
			}
			if _, err := v.Decode(b); err == nil {
				t.Errorf("%s, %s: decode accepts %x", v.Type.Name, name, b)
			}
		}
	}
	// Union index 5 of ["null","string"], and a negative string length.
	ty, _ := cat.Type("shop.notifications.EmailRequested")
	for name, b := range map[string][]byte{
		"union branch": {2, 'o', 0, 0, 0, 10},
		"length":       {1},
	} {
		if _, err := ty.Current().DecodeTyped(b); err == nil {
			t.Errorf("%s: typed decode accepts %x", name, b)
		}
		if _, err := ty.Current().Decode(b); err == nil {
			t.Errorf("%s: decode accepts %x", name, b)
		}
	}
}

// A string beyond hamba's 1 MiB limit is refused by the typed path and read
// by the fallback to goavro, as before the typed path.
func TestDecodeFallsBackToGoavroBeyondHambasLimits(t *testing.T) {
	cat := load(t)
	ev := schemas.ReviewAdded{ReviewID: "r", Comment: string(bytes.Repeat([]byte("a"), 2<<20))}
	v, bin, err := cat.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.DecodeTyped(bin); err == nil {
		t.Log("hamba now reads strings over 1 MiB: the fallback is not exercised")
	}
	got, err := v.Decode(bin)
	if err != nil || !reflect.DeepEqual(got, ev) {
		t.Fatalf("decode: %v", err)
	}
}

func TestEncodeRefusesAnOlderVersionAndAForeignEvent(t *testing.T) {
	cat := load(t)
	ty, _ := cat.Type("shop.catalog.ProductRegistered")
	v1, _ := ty.Version(1)
	if _, err := v1.Encode(nil, schemas.ProductRegistered{}); !errors.Is(err, schemas.ErrNotCurrent) {
		t.Errorf("encode with v1: want ErrNotCurrent, got %v", err)
	}
	if _, err := ty.Current().Encode(nil, schemas.ReviewAdded{}); err == nil {
		t.Error("encode of a ReviewAdded with ProductRegistered's schema succeeds")
	}
}
