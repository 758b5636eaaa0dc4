package schemas_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/linkedin/goavro/v2"

	"shopstream/schemas"
	"shopstream/schemas/schemastest"
)

func load(t *testing.T) *schemas.Catalog {
	t.Helper()
	c, err := schemas.Load()
	if err != nil {
		t.Fatalf("load catalog: %v", err)
	}
	return c
}

func TestEverySampleRoundTripsThroughItsCurrentSchema(t *testing.T) {
	c := load(t)
	seen := map[string]bool{}
	for _, ev := range schemastest.Samples() {
		v, native, err := c.Native(ev)
		if err != nil {
			t.Fatalf("%T: %v", ev, err)
		}
		bin, err := v.Codec.BinaryFromNative(nil, native)
		if err != nil {
			t.Fatalf("%s: encode: %v", v.Type.Name, err)
		}
		back, _, err := v.Codec.NativeFromBinary(bin)
		if err != nil {
			t.Fatalf("%s: decode: %v", v.Type.Name, err)
		}
		got, err := v.Type.ToEvent(back.(map[string]any))
		if err != nil {
			t.Fatalf("%s: to event: %v", v.Type.Name, err)
		}
		if !reflect.DeepEqual(got, ev) {
			t.Errorf("%s: round trip\n got %#v\nwant %#v", v.Type.Name, got, ev)
		}
		seen[v.Type.Name] = true
	}
	for _, ty := range c.Types() {
		if !seen[ty.Name] {
			t.Errorf("no sample for %s: add one to schemastest.Samples", ty.Name)
		}
	}
}

func TestEveryTopicHasEventTypes(t *testing.T) {
	c := load(t)
	byTopic := map[string]int{}
	for _, ty := range c.Types() {
		byTopic[ty.Topic]++
	}
	for _, spec := range schemas.Topics() {
		if byTopic[spec.Name] == 0 {
			t.Errorf("topic %s carries no event type", spec.Name)
		}
	}
}

func TestProductRegisteredOldVersionsUpcastToCurrent(t *testing.T) {
	c := load(t)
	ty, _ := c.Type("shop.catalog.ProductRegistered")
	if ty.Current().Number != 3 {
		t.Fatalf("want current 3, got %d", ty.Current().Number)
	}
	for n, old := range map[int]map[string]any{
		1: {"product_id": "p-9", "title": "Maillot", "price_cents": int64(100),
			"quantity": int32(3), "photo": goavro.Union("string", "http://x/y.jpg")},
		2: {"product_id": "p-9", "title": "Maillot", "price_cents": int64(100), "currency": "EUR",
			"initial_stock": int32(3), "photo_url": goavro.Union("string", "http://x/y.jpg")},
	} {
		t.Run(fmt.Sprintf("v%d", n), func(t *testing.T) { upcastsToCurrent(t, c, ty, n, old) })
	}
}

func upcastsToCurrent(t *testing.T, c *schemas.Catalog, ty *schemas.Type, n int, old map[string]any) {
	v1, ok := ty.Version(n)
	if !ok {
		t.Fatalf("no version %d", n)
	}
	bin, err := v1.Codec.BinaryFromNative(nil, old)
	if err != nil {
		t.Fatal(err)
	}
	writer, err := goavro.NewCodec(v1.Schema)
	if err != nil {
		t.Fatal(err)
	}
	found, err := c.Identify(writer)
	if err != nil || found != v1 {
		t.Fatalf("identify v%d: %v %v", n, found, err)
	}
	native, _, err := v1.Codec.NativeFromBinary(bin)
	if err != nil {
		t.Fatal(err)
	}
	up, err := ty.Upcast(n, native.(map[string]any))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ty.ToEvent(up)
	if err != nil {
		t.Fatal(err)
	}
	got := ev.(schemas.ProductRegistered)
	if got.InitialStock != 3 || got.PhotoURL == nil || *got.PhotoURL != "http://x/y.jpg" || got.Currency != "EUR" || got.Title != "Maillot" {
		t.Fatalf("upcast v%d: got %+v", n, got)
	}
	// The upcast value must also be a valid value of the current schema.
	if _, err := ty.Current().Codec.BinaryFromNative(nil, up); err != nil {
		t.Fatalf("upcast value does not fit the current version: %v", err)
	}
}

func TestIdentifyRefusesAForeignSchema(t *testing.T) {
	c := load(t)
	foreign, err := goavro.NewCodec(`{"type":"record","name":"Alien","namespace":"x","fields":[{"name":"a","type":"int"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Identify(foreign); !errors.Is(err, schemas.ErrUnknownSchema) {
		t.Fatalf("want ErrUnknownSchema, got %v", err)
	}
}

func TestToEventReportsAMissingField(t *testing.T) {
	c := load(t)
	ty, _ := c.Type("shop.reviews.ReviewAdded")
	_, err := ty.ToEvent(map[string]any{"review_id": "r"})
	if err == nil {
		t.Fatal("want an error for missing fields")
	}
}
