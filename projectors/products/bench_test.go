package products_test

import (
	"fmt"
	"testing"
	"time"

	"shopstream/internal/platform/eventlog"
	"shopstream/projectors/products"
	"shopstream/projectors/runner/runnertest"
	"shopstream/schemas"
)

// BenchmarkApply measures the products fold alone, in memory: its cost per
// event in ns and its allocations per event (ns/op, B/op and allocs/op
// are per fold of the whole log, events/op events):
//
//   - log: the log folded into empty documents, each document's events in
//     order, as the runner folds a batch (grouped by document).
//   - redelivered: the same log folded again over the finished documents:
//     every event is one the document has already applied, so this is the
//     cost of the version guard alone.
//
// Run it with
//
//	go test -run '^$' -bench Apply ./projectors/products
func BenchmarkApply(b *testing.B) {
	runnertest.BenchmarkFold(b, products.Apply, benchProductLog(100, 25), func(v products.View) bool { return v.RatingCount > 0 })
}

// benchProductLog is the log of n products, grouped by product, numbered
// per stream (topic and product) as the write side numbers it: per
// product, its registration, a photo, the inventory's first StockReceived,
// 2 StockReserved and a StockReleased, a restock (ignored: the inventory
// has spoken) and its StockReceived, and reviews ReviewAdded (the document
// keeps the latest 10).
func benchProductLog(n, reviews int) [][]eventlog.Envelope {
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	out := make([][]eventlog.Envelope, n)
	for i := range n {
		id := fmt.Sprintf("0193f5a0-0000-7000-8000-%012x", i)
		versions := map[string]int64{}
		add := func(topic string, ev schemas.Event) {
			versions[topic]++
			out[i] = append(out[i], eventlog.Envelope{Topic: topic, Event: ev, Meta: eventlog.Metadata{
				EventID: fmt.Sprintf("%s/%s/%d", topic, id, versions[topic]), Type: ev.EventType(), AggregateID: id,
				AggregateVersion: versions[topic], OccurredAt: t0.Add(time.Duration(len(out[i])) * time.Minute)}})
		}
		photo := fmt.Sprintf("https://cdn.example.org/photos/%s.jpg", id)
		add(schemas.TopicProducts, schemas.ProductRegistered{ProductID: id, Title: fmt.Sprintf("Maillot domicile Olympique de Marseille 1993, taille L, n°%d", i),
			PriceCents: int64(8999 + i), Currency: "EUR", InitialStock: 50})
		add(schemas.TopicProducts, schemas.PhotoWasAdded{ProductID: id, PhotoURL: photo})
		add(schemas.TopicStock, schemas.StockReceived{ProductID: id, Quantity: 50, Available: 50, CatalogVersion: 1})
		for r := range reviews {
			add(schemas.TopicReviews, schemas.ReviewAdded{ReviewID: fmt.Sprintf("%s/r%d", id, r), ProductID: id,
				CustomerID: fmt.Sprintf("0193f5a0-0000-7000-c000-%012x", r), Rating: int32(1 + (i+r)%5),
				Comment: "Très bon maillot, taille un peu grand, livraison rapide."})
			switch r {
			case 3, 7:
				add(schemas.TopicStock, schemas.StockReserved{ProductID: id, OrderID: fmt.Sprintf("o%d", r), Quantity: 1, Remaining: int32(49 - r/4)})
			case 9:
				add(schemas.TopicStock, schemas.StockReleased{ProductID: id, OrderID: "o7", Quantity: 1, Reason: "payment_failed"})
			case 12:
				add(schemas.TopicProducts, schemas.ProductRestocked{ProductID: id, Quantity: 20})
				add(schemas.TopicStock, schemas.StockReceived{ProductID: id, Quantity: 20, Available: 69, CatalogVersion: versions[schemas.TopicProducts]})
			}
		}
	}
	return out
}
