package eventlog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"shopstream/internal/platform/eventlog"
	"shopstream/internal/testinfra/eventlogtest"
	"shopstream/internal/testinfra/kafkatest"
	"shopstream/schemas"
	"shopstream/schemas/schemastest"
)

func newSerde(t testing.TB) (*eventlog.Serde, *sr.Client) {
	t.Helper()
	return eventlogtest.Serde(t)
}

// Every event of the catalog goes through the registry serde, onto Kafka and
// back, with its metadata, on kfake and (when configured) real Kafka.
func TestEveryEventRoundTripsThroughRegistryAndKafka(t *testing.T) {
	kafkatest.ForEachBroker(t, func(t *testing.T, brokers []string) {
		ctx := context.Background()
		serde, reg := newSerde(t)
		samples := schemastest.Samples()
		var topics []string
		for _, ev := range samples {
			ty, _ := serde.Catalog().TypeOf(ev)
			if !slices.Contains(topics, ty.Topic) {
				topics = append(topics, ty.Topic)
			}
		}
		from := kafkatest.From(t, brokers, topics...)
		prod := kafkatest.Client(t, brokers)
		// Event ids carry this run's prefix: on a shared broker other
		// packages' shops write to the same topics, with schema ids of
		// their own registries, and only our records are ours to decode.
		run := fmt.Sprintf("e-%d-", time.Now().UnixNano())
		want := map[string]eventlog.Metadata{}
		for i, ev := range samples {
			ty, _ := serde.Catalog().TypeOf(ev)
			value, err := serde.Encode(ctx, ty.Topic, ev)
			if err != nil {
				t.Fatalf("encode %s: %v", ty.Name, err)
			}
			meta := eventlog.Metadata{
				EventID: run + strconv.Itoa(i), Type: ty.Name, Source: "shopstream/test",
				AggregateID: "agg-1", AggregateVersion: int64(i + 1),
				OccurredAt:    time.Date(2026, 11, 27, 10, 0, i, 0, time.UTC),
				CorrelationID: "corr-1", CausationID: "cause-1",
				TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			}
			want[meta.EventID] = meta
			rec := &kgo.Record{Topic: ty.Topic, Key: []byte(meta.AggregateID), Value: value, Headers: meta.Headers()}
			if err := prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		ours := func(r *kgo.Record) bool {
			for _, h := range r.Headers {
				if h.Key == eventlog.HeaderID {
					return strings.HasPrefix(string(h.Value), run)
				}
			}
			return false
		}
		recs := kafkatest.ConsumeWhere(t, brokers, from, len(samples), 30*time.Second, ours)
		for _, r := range recs {
			env, err := serde.Read(ctx, r)
			if err != nil {
				t.Fatalf("read %s@%d: %v", r.Topic, r.Offset, err)
			}
			if !reflect.DeepEqual(env.Meta, want[env.Meta.EventID]) {
				t.Errorf("metadata\n got %+v\nwant %+v", env.Meta, want[env.Meta.EventID])
			}
			i := int(env.Meta.AggregateVersion - 1)
			if !reflect.DeepEqual(env.Event, samples[i]) {
				t.Errorf("event\n got %#v\nwant %#v", env.Event, samples[i])
			}
		}
		// TopicRecordNameStrategy: one subject per topic and record name.
		subjects, err := reg.Subjects(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(subjects, "shop.catalog.products.v1-shop.catalog.ProductRegistered") {
			t.Errorf("subjects %v lack the TopicRecordNameStrategy subject of ProductRegistered", subjects)
		}
	})
}

// A record written by an older build with ProductRegistered v1 (before the
// rename of quantity and photo, and before currency) reads as the current
// event: Decode reads it by schema resolution (the typed path), and the
// upcaster chain (DecodeGeneric) reads it to the same event.
func TestV1RecordDecodesThroughTheUpcaster(t *testing.T) {
	ctx := context.Background()
	serde, _ := newSerde(t)
	ty, _ := serde.Catalog().Type("shop.catalog.ProductRegistered")
	v1, _ := ty.Version(1)
	value, err := serde.EncodeVersion(ctx, schemas.TopicProducts, v1, map[string]any{
		"product_id": "p-1", "title": "Maillot de l'OM 93", "price_cents": int64(8999),
		"quantity": int32(1), "photo": goavro.Union("string", "http://autresite.com/maillot.jpg"),
	})
	if err != nil {
		t.Fatal(err)
	}
	// The current version registers under the same subject as v2.
	current, err := serde.Encode(ctx, schemas.TopicProducts, schemas.ProductRegistered{ProductID: "p-2", Title: "x", Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	if string(value[1:5]) == string(current[1:5]) {
		t.Fatal("v1 and v2 got the same schema id")
	}
	ev, writer, err := serde.Decode(ctx, schemas.TopicProducts, value)
	if err != nil {
		t.Fatal(err)
	}
	if writer.Number != 1 {
		t.Errorf("writer version %d, want 1", writer.Number)
	}
	photo := "http://autresite.com/maillot.jpg"
	want := schemas.ProductRegistered{ProductID: "p-1", Title: "Maillot de l'OM 93", PriceCents: 8999, Currency: "EUR", InitialStock: 1, PhotoURL: &photo}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("got %#v\nwant %#v", ev, want)
	}
	if generic, err := v1.DecodeGeneric(value[5:]); err != nil || !reflect.DeepEqual(generic, want) {
		t.Fatalf("through the upcasters: got %#v (%v)\nwant %#v", generic, err, want)
	}
}

func TestPoisonRecordsAreRecognised(t *testing.T) {
	ctx := context.Background()
	serde, reg := newSerde(t)
	good, err := serde.Encode(ctx, schemas.TopicReviews, schemas.ReviewAdded{ReviewID: "r", ProductID: "p", CustomerID: "c", Rating: 4})
	if err != nil {
		t.Fatal(err)
	}
	alien, err := reg.CreateSchema(ctx, "alien-value", sr.Schema{Type: sr.TypeAvro, Schema: `{"type":"record","name":"Alien","fields":[{"name":"a","type":"int"}]}`})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		topic string
		value []byte
	}{
		"json instead of avro":       {schemas.TopicReviews, []byte(`{"rating":5}`)},
		"too short":                  {schemas.TopicReviews, []byte{0, 0}},
		"unknown schema id":          {schemas.TopicReviews, []byte{0, 0, 0, 0x7f, 0x7f, 2}},
		"schema of no known version": {schemas.TopicReviews, []byte{0, 0, 0, 0, byte(alien.ID), 2}},
		"event on the wrong topic":   {schemas.TopicOrders, good},
		"truncated payload":          {schemas.TopicReviews, good[:len(good)-3]},
		"trailing bytes":             {schemas.TopicReviews, append(slices.Clone(good), 1, 2, 3)},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := serde.Decode(ctx, c.topic, c.value); !errors.Is(err, eventlog.ErrPoison) {
				t.Fatalf("want ErrPoison, got %v", err)
			}
		})
	}
	if _, _, err := serde.Decode(ctx, schemas.TopicReviews, good); err != nil {
		t.Fatalf("the good record must still decode: %v", err)
	}
}

func TestUnreachableRegistryIsTransientNotPoison(t *testing.T) {
	cl, err := sr.NewClient(sr.URLs("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	cat, _ := schemas.Load()
	serde := eventlog.NewSerde(cl, cat)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err = serde.Decode(ctx, schemas.TopicReviews, []byte{0, 0, 0, 0, 9, 2})
	if err == nil || errors.Is(err, eventlog.ErrPoison) {
		t.Fatalf("want a transient error, got %v", err)
	}
}

func TestMetadataWithoutIDIsPoison(t *testing.T) {
	_, err := eventlog.ParseMetadata(&kgo.Record{Key: []byte("k")})
	if !errors.Is(err, eventlog.ErrPoison) {
		t.Fatalf("want ErrPoison, got %v", err)
	}
}

// A record written by a build of the retired v2 (initial_stock, photo_url,
// its own currency) reads as the current event, through the typed path's
// schema resolution and through the upcasters alike.
func TestV2RecordDecodesThroughResolutionAsThroughTheUpcasters(t *testing.T) {
	ctx := context.Background()
	serde, _ := newSerde(t)
	ty, _ := serde.Catalog().Type("shop.catalog.ProductRegistered")
	v2, _ := ty.Version(2)
	value, err := serde.EncodeVersion(ctx, schemas.TopicProducts, v2, map[string]any{
		"product_id": "p-2", "title": "Écharpe", "price_cents": int64(1500), "currency": "USD",
		"initial_stock": int32(7), "photo_url": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	ev, writer, err := serde.Decode(ctx, schemas.TopicProducts, value)
	if err != nil {
		t.Fatal(err)
	}
	want := schemas.ProductRegistered{ProductID: "p-2", Title: "Écharpe", PriceCents: 1500, Currency: "USD", InitialStock: 7}
	if writer != v2 || !reflect.DeepEqual(ev, want) {
		t.Fatalf("got %#v (writer v%d)\nwant %#v", ev, writer.Number, want)
	}
	if generic, err := v2.DecodeGeneric(value[5:]); err != nil || !reflect.DeepEqual(generic, want) {
		t.Fatalf("the upcasters read %#v (%v)", generic, err)
	}
}

// The serde's payload (the typed path) is byte for byte what goavro writes
// for the generic value of every sample, after the same header.
func TestEncodeWritesGoavrosBytes(t *testing.T) {
	ctx := context.Background()
	serde, _ := newSerde(t)
	for _, ev := range schemastest.Samples() {
		v, native, err := serde.Catalog().Native(ev)
		if err != nil {
			t.Fatal(err)
		}
		typed, err := serde.Encode(ctx, v.Type.Topic, ev)
		if err != nil {
			t.Fatalf("%s: %v", v.Type.Name, err)
		}
		generic, err := serde.EncodeVersion(ctx, v.Type.Topic, v, native)
		if err != nil {
			t.Fatalf("%s: %v", v.Type.Name, err)
		}
		if !bytes.Equal(typed, generic) {
			t.Errorf("%s: typed %x\ngoavro %x", v.Type.Name, typed, generic)
		}
	}
}

// A record a newer build writes, with a version of its event type this
// build does not have (a rolling upgrade: the writer upgraded first), is
// read by schema resolution into this build's current version, not
// dead-lettered: its added field is skipped. A schema of no known event
// type stays poison.
func TestNewerWriterVersionDecodesByResolution(t *testing.T) {
	ctx := context.Background()
	serde, reg := newSerde(t)
	if err := serde.RegisterAll(ctx); err != nil {
		t.Fatal(err)
	}
	// PaymentRequested as a future v3 writes it: one more field, defaulted.
	newer := `{"type":"record","name":"PaymentRequested","namespace":"shop.payments","fields":[
 {"name":"order_id","type":"string"},
 {"name":"method","type":"string"},
 {"name":"amount_cents","type":"long"},
 {"name":"expires_at","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null},
 {"name":"attempt","type":"int","default":1}]}`
	subject := schemas.Subject(schemas.TopicPayments, "shop.payments.PaymentRequested")
	wire := func(subject, schema string, native map[string]any) []byte {
		t.Helper()
		got, err := reg.CreateSchema(ctx, subject, sr.Schema{Schema: schema, Type: sr.TypeAvro})
		if err != nil {
			t.Fatal(err)
		}
		codec, err := goavro.NewCodec(schema)
		if err != nil {
			t.Fatal(err)
		}
		bin, err := codec.BinaryFromNative(nil, native)
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{0, byte(got.ID >> 24), byte(got.ID >> 16), byte(got.ID >> 8), byte(got.ID)}, bin...)
	}
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	value := wire(subject, newer, map[string]any{"order_id": "o-1", "method": "card", "amount_cents": int64(4200),
		"expires_at": goavro.Union("long.timestamp-millis", at), "attempt": int32(2)})
	ev, writer, err := serde.Decode(ctx, schemas.TopicPayments, value)
	if err != nil {
		t.Fatalf("a newer writer's record: %v", err)
	}
	want := schemas.PaymentRequested{OrderID: "o-1", Method: "card", AmountCents: 4200, ExpiresAt: &at}
	if got, ok := ev.(schemas.PaymentRequested); !ok || got.OrderID != want.OrderID || got.AmountCents != want.AmountCents ||
		got.ExpiresAt == nil || !got.ExpiresAt.Equal(at) {
		t.Fatalf("decoded %#v, want %#v", ev, want)
	}
	if writer.Number != 0 {
		t.Errorf("writer version %d, want 0: a version this build does not have", writer.Number)
	}

	// A record type this build knows nothing of is poison, as before.
	other := wire(schemas.Subject(schemas.TopicPayments, "shop.payments.Stranger"), `{"type":"record","name":"Stranger","namespace":"shop.payments","fields":[{"name":"x","type":"string"}]}`,
		map[string]any{"x": "y"})
	if _, _, err := serde.Decode(ctx, schemas.TopicPayments, other); !errors.Is(err, eventlog.ErrPoison) {
		t.Fatalf("an unknown record type: %v, want poison", err)
	}
}
