package orderviews_test

import (
	"fmt"
	"testing"
	"time"

	"shopstream/internal/platform/eventlog"
	"shopstream/projectors/orderviews"
	"shopstream/projectors/runner/runnertest"
	"shopstream/schemas"
)

// BenchmarkApply measures the orders fold alone, in memory: its cost per
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
//	go test -run '^$' -bench Apply ./projectors/orderviews
func BenchmarkApply(b *testing.B) {
	runnertest.BenchmarkFold(b, orderviews.Apply, benchOrderLog(300, 20), func(v orderviews.View) bool { return v.Placed })
}

// benchOrderLog is the log of n orders over a catalogue of nProducts, as
// the write side writes it (each event numbered in its aggregate's stream:
// the order, its payment, invoice and emails keyed by order id, one stock
// stream per product shared by every order), grouped by the document the
// projection routes it to (orderviews.DocID; the stock events of no order are
// left out, as the runner leaves them out), each document's events in
// write order. Of ten orders, eight are paid by card, confirmed, invoiced
// and emailed; one fails its payment (its units released, then cancelled);
// one is cancelled out of stock. Orders have one to three lines.
func benchOrderLog(n, nProducts int) [][]eventlog.Envelope {
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	versions := map[string]int64{}
	byDoc := map[string]int{}
	var out [][]eventlog.Envelope
	seq := 0
	add := func(topic, aggregateID string, ev schemas.Event) {
		stream := topic + "/" + aggregateID
		versions[stream]++
		seq++
		env := eventlog.Envelope{Topic: topic, Event: ev, Meta: eventlog.Metadata{
			EventID: fmt.Sprintf("%s/%d", stream, versions[stream]), Type: ev.EventType(), AggregateID: aggregateID,
			AggregateVersion: versions[stream], OccurredAt: t0.Add(time.Duration(seq) * time.Second)}}
		id := orderviews.DocID(env)
		if id == "" {
			return
		}
		i, ok := byDoc[id]
		if !ok {
			i = len(out)
			byDoc[id] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], env)
	}
	product := func(i int) string { return fmt.Sprintf("0193f5a0-0000-7000-8000-%012x", i) }
	for p := range nProducts {
		add(schemas.TopicStock, product(p), schemas.StockReceived{ProductID: product(p), Quantity: 1000, Available: 1000, CatalogVersion: 1})
	}
	for o := range n {
		id := fmt.Sprintf("0193f5a0-0000-7000-d000-%012x", o)
		customer := fmt.Sprintf("0193f5a0-0000-7000-c000-%012x", o%97)
		var lines []schemas.OrderLine
		total := int64(0)
		for l := range 1 + o%3 {
			line := schemas.OrderLine{ProductID: product((o*7 + l*3) % nProducts), Quantity: int32(1 + l), UnitPriceCents: int64(1500 + 1000*l)}
			lines = append(lines, line)
			total += int64(line.Quantity) * line.UnitPriceCents
		}
		add(schemas.TopicOrders, id, schemas.OrderPlaced{OrderID: id, CustomerID: customer, PaymentMethod: "card", Items: lines, TotalCents: total})
		if o%10 == 9 {
			add(schemas.TopicStock, lines[0].ProductID, schemas.StockReservationRejected{ProductID: lines[0].ProductID, OrderID: id, Quantity: lines[0].Quantity, Available: 0})
			add(schemas.TopicOrders, id, schemas.OrderCancelled{OrderID: id, Reason: "out_of_stock"})
			continue
		}
		for _, l := range lines {
			add(schemas.TopicStock, l.ProductID, schemas.StockReserved{ProductID: l.ProductID, OrderID: id, Quantity: l.Quantity, Remaining: 500})
		}
		add(schemas.TopicPayments, id, schemas.PaymentRequested{OrderID: id, Method: "card", AmountCents: total})
		if o%10 == 4 {
			add(schemas.TopicPayments, id, schemas.PaymentFailed{OrderID: id, Method: "card", Reason: "card_declined"})
			for _, l := range lines {
				add(schemas.TopicStock, l.ProductID, schemas.StockReleased{ProductID: l.ProductID, OrderID: id, Quantity: l.Quantity, Reason: "payment_failed"})
			}
			add(schemas.TopicOrders, id, schemas.OrderCancelled{OrderID: id, Reason: "payment_failed"})
			continue
		}
		add(schemas.TopicPayments, id, schemas.PaymentSucceeded{OrderID: id, Method: "card", AmountCents: total, ProviderReference: fmt.Sprintf("psp_ch_%d", o)})
		add(schemas.TopicOrders, id, schemas.OrderConfirmed{OrderID: id})
		number := fmt.Sprintf("2026-%06d", o+1)
		add(schemas.TopicInvoices, id, schemas.InvoiceIssued{OrderID: id, InvoiceNumber: number, CustomerID: customer, TotalCents: total, DocumentRef: "billing/documents/" + id})
		add(schemas.TopicEmails, id, schemas.EmailRequested{OrderID: id, To: "ada@example.com", Subject: "Your shopstream invoice " + number, Template: "invoice"})
		add(schemas.TopicEmails, id, schemas.EmailSent{OrderID: id, To: "ada@example.com", MessageID: fmt.Sprintf("<m%d@shopstream>", o), SentAt: t0.Add(time.Duration(seq) * time.Second)})
	}
	return out
}
