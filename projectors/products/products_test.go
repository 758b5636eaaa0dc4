package products

import (
	"reflect"
	"testing"
	"time"

	"shopstream/internal/eventlog"
	"shopstream/schemas"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func env(topic string, version int64, ev schemas.Event) eventlog.Envelope {
	return eventlog.Envelope{Topic: topic, Event: ev, Meta: eventlog.Metadata{AggregateID: "p", AggregateVersion: version, OccurredAt: t0.Add(time.Duration(version) * time.Minute)}}
}

func fold(envs ...eventlog.Envelope) View {
	var v View
	for _, e := range envs {
		v = Apply(v, e)
	}
	return v
}

func TestApply(t *testing.T) {
	photo := "http://autresite.com/maillot.jpg"
	registered := env(schemas.TopicProducts, 1, schemas.ProductRegistered{ProductID: "p", Title: "Maillot", PriceCents: 8999, Currency: "EUR", InitialStock: 1, PhotoURL: &photo})
	review := func(v int64, rating int32) eventlog.Envelope {
		return env(schemas.TopicReviews, v, schemas.ReviewAdded{ProductID: "p", CustomerID: "c", Rating: rating, Comment: "ok"})
	}
	cases := []struct {
		name  string
		given []eventlog.Envelope
		check func(t *testing.T, v View)
	}{
		{"registered", []eventlog.Envelope{registered}, func(t *testing.T, v View) {
			if !v.Registered || v.Title != "Maillot" || v.Stock != 1 || v.Photo != photo || v.SoldOut || v.Average() != nil {
				t.Fatalf("%+v", v)
			}
		}},
		{"registered with zero stock is sold out", []eventlog.Envelope{env(schemas.TopicProducts, 1, schemas.ProductRegistered{ProductID: "p", Title: "T", PriceCents: 1})}, func(t *testing.T, v View) {
			if !v.SoldOut {
				t.Fatalf("%+v", v)
			}
		}},
		{"restocked", []eventlog.Envelope{registered, env(schemas.TopicProducts, 2, schemas.ProductRestocked{ProductID: "p", Quantity: 4})}, func(t *testing.T, v View) {
			if v.Stock != 5 {
				t.Fatalf("stock %d", v.Stock)
			}
		}},
		{"rated", []eventlog.Envelope{registered, review(1, 5), review(2, 2)}, func(t *testing.T, v View) {
			if v.RatingCount != 2 || *v.Average() != 3.5 || len(v.Reviews) != 2 || v.Reviews[0].Rating != 2 {
				t.Fatalf("%+v", v)
			}
		}},
		{"review before the product", []eventlog.Envelope{review(1, 4), registered}, func(t *testing.T, v View) {
			if !v.Registered || v.RatingCount != 1 {
				t.Fatalf("%+v", v)
			}
		}},
		{"keeps the latest reviews", func() []eventlog.Envelope {
			out := []eventlog.Envelope{registered}
			for i := int64(1); i <= 15; i++ {
				out = append(out, review(i, int32(1+i%5)))
			}
			return out
		}(), func(t *testing.T, v View) {
			if len(v.Reviews) != LatestReviews || v.RatingCount != 15 || !v.Reviews[0].At.Equal(t0.Add(15*time.Minute)) {
				t.Fatalf("%d reviews, count %d, newest %v", len(v.Reviews), v.RatingCount, v.Reviews[0].At)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.check(t, fold(c.given...)) })
	}
}

// Every event applied twice, and batches redelivered, give the same
// document as one clean pass.
func TestApplyIsIdempotent(t *testing.T) {
	var envs []eventlog.Envelope
	envs = append(envs, env(schemas.TopicProducts, 1, schemas.ProductRegistered{ProductID: "p", Title: "T", PriceCents: 1, InitialStock: 3}))
	for i := int64(1); i <= 12; i++ {
		envs = append(envs, env(schemas.TopicReviews, i, schemas.ReviewAdded{ProductID: "p", CustomerID: "c", Rating: int32(1 + i%5)}))
		if i%4 == 0 {
			envs = append(envs, env(schemas.TopicProducts, 1+i/4, schemas.ProductRestocked{ProductID: "p", Quantity: 2}))
		}
	}
	clean := fold(envs...)

	var twice []eventlog.Envelope
	for _, e := range envs {
		twice = append(twice, e, e)
	}
	if got := fold(twice...); !reflect.DeepEqual(got, clean) {
		t.Fatalf("each event twice:\n got %+v\nwant %+v", got, clean)
	}
	// Redelivered batches: after each batch of 5, the last 3 come again.
	var redelivered []eventlog.Envelope
	for lo := 0; lo < len(envs); lo += 5 {
		hi := min(lo+5, len(envs))
		redelivered = append(redelivered, envs[lo:hi]...)
		redelivered = append(redelivered, envs[max(lo, hi-3):hi]...)
	}
	if got := fold(redelivered...); !reflect.DeepEqual(got, clean) {
		t.Fatalf("redelivered batches:\n got %+v\nwant %+v", got, clean)
	}
	// Apply must not mutate its input.
	before := fold(envs[:3]...)
	snapshot := fold(envs[:3]...)
	_ = Apply(before, envs[3])
	if !reflect.DeepEqual(before, snapshot) {
		t.Fatal("Apply mutated the document it was given")
	}
}
