package products

import (
	"fmt"
	"testing"
	"time"

	"shopstream/internal/platform/eventlog"
	"shopstream/projectors/runner/runnertest"
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
		{"restock after the inventory's first event is left to the inventory", []eventlog.Envelope{registered,
			env(schemas.TopicStock, 1, schemas.StockReceived{ProductID: "p", Quantity: 1, Available: 1, CatalogVersion: 1}),
			env(schemas.TopicProducts, 2, schemas.ProductRestocked{ProductID: "p", Quantity: 4})}, func(t *testing.T, v View) {
			if v.Stock != 1 {
				t.Fatalf("stock %d, want the inventory's 1 until its StockReceived for the restock", v.Stock)
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

// Every event applied twice, batches redelivered after a crash, and the
// whole log replayed give the same documents as one clean pass, for a
// realistic log of three products over the three topics.
func TestApplyIsIdempotent(t *testing.T) {
	photo, newPhoto := "http://autresite.com/maillot.jpg", "http://autresite.com/gourde.jpg"
	var l productLog
	l.add(schemas.TopicProducts, "p1", schemas.ProductRegistered{ProductID: "p1", Title: "Maillot", PriceCents: 8999, Currency: "EUR", InitialStock: 5, PhotoURL: &photo})
	l.add(schemas.TopicProducts, "p2", schemas.ProductRegistered{ProductID: "p2", Title: "Gourde", PriceCents: 1299, Currency: "EUR", InitialStock: 1})
	l.review("p3", "c1", 4) // reviews of p3 arrive before p3 is registered
	l.review("p3", "c2", 2)
	l.add(schemas.TopicStock, "p1", schemas.StockReceived{ProductID: "p1", Quantity: 5, Available: 5, CatalogVersion: 1})
	l.add(schemas.TopicStock, "p2", schemas.StockReceived{ProductID: "p2", Quantity: 1, Available: 1, CatalogVersion: 1})
	l.add(schemas.TopicProducts, "p3", schemas.ProductRegistered{ProductID: "p3", Title: "Short", PriceCents: 3999, Currency: "EUR"})
	l.add(schemas.TopicProducts, "p1", schemas.ProductRestocked{ProductID: "p1", Quantity: 4}) // ignored: p1's stock is the inventory's
	l.add(schemas.TopicStock, "p1", schemas.StockReserved{ProductID: "p1", OrderID: "o1", Quantity: 2, Remaining: 3})
	l.add(schemas.TopicStock, "p2", schemas.StockReserved{ProductID: "p2", OrderID: "o1", Quantity: 1, Remaining: 0})
	l.add(schemas.TopicStock, "p2", schemas.ProductSoldOut{ProductID: "p2"})
	l.add(schemas.TopicStock, "p1", schemas.StockReceived{ProductID: "p1", Quantity: 4, Available: 7, CatalogVersion: 2})
	l.add(schemas.TopicProducts, "p2", schemas.PhotoWasAdded{ProductID: "p2", PhotoURL: newPhoto})
	l.add(schemas.TopicStock, "p2", schemas.StockReservationRejected{ProductID: "p2", OrderID: "o2", Quantity: 1, Available: 0})
	l.add(schemas.TopicProducts, "p3", schemas.ProductRestocked{ProductID: "p3", Quantity: 3}) // counted: no inventory event for p3 yet
	for i := range 13 {
		l.review("p1", fmt.Sprintf("c%d", i), int32(1+i%5))
		if i%4 == 0 {
			l.review("p2", fmt.Sprintf("c%d", i), 5)
		}
	}
	l.add(schemas.TopicStock, "p1", schemas.StockReleased{ProductID: "p1", OrderID: "o1", Quantity: 2, Reason: "payment_failed"})
	l.add(schemas.TopicStock, "p2", schemas.StockReleased{ProductID: "p2", OrderID: "o1", Quantity: 1, Reason: "payment_failed"})
	l.add(schemas.TopicStock, "p3", schemas.StockReceived{ProductID: "p3", Quantity: 0, Available: 0, CatalogVersion: 1})
	l.add(schemas.TopicStock, "p3", schemas.StockReceived{ProductID: "p3", Quantity: 3, Available: 3, CatalogVersion: 2})

	// The log means something: check the clean pass first.
	docs := runnertest.Fold(Apply, Projection().DocID, l.envs)
	p1, p2, p3 := docs["p1"], docs["p2"], docs["p3"]
	if len(docs) != 3 ||
		p1.Stock != 9 || p1.Photo != photo || p1.SoldOut || p1.RatingCount != 13 || len(p1.Reviews) != LatestReviews || p1.Reviews[0].CustomerID != "c12" ||
		p2.Stock != 1 || p2.Photo != newPhoto || p2.SoldOut || p2.RatingCount != 4 ||
		p3.Stock != 3 || !p3.Registered || p3.Title != "Short" || p3.RatingCount != 2 || *p3.Average() != 3 {
		t.Fatalf("clean pass:\np1 %+v\np2 %+v\np3 %+v", p1, p2, p3)
	}
	runnertest.Idempotent(t, Apply, Projection().DocID, l.envs)
}

// productLog builds a log of product events, numbering each aggregate's
// versions and the times as the write side does.
type productLog struct {
	versions map[string]int64
	envs     []eventlog.Envelope
}

func (l *productLog) add(topic, productID string, ev schemas.Event) {
	if l.versions == nil {
		l.versions = map[string]int64{}
	}
	l.versions[topic+"/"+productID]++
	l.envs = append(l.envs, eventlog.Envelope{Topic: topic, Event: ev, Meta: eventlog.Metadata{
		EventID: fmt.Sprintf("e%d", len(l.envs)+1), Type: ev.EventType(), AggregateID: productID,
		AggregateVersion: l.versions[topic+"/"+productID], OccurredAt: t0.Add(time.Duration(len(l.envs)) * time.Minute)}})
}

func (l *productLog) review(productID, customerID string, rating int32) {
	l.add(schemas.TopicReviews, productID, schemas.ReviewAdded{ReviewID: fmt.Sprintf("r%d", len(l.envs)+1), ProductID: productID, CustomerID: customerID, Rating: rating, Comment: "ok"})
}
