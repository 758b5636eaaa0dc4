package orderviews_test

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"shopstream/internal/platform/eventlog"
	"shopstream/projectors/orderviews"
	"shopstream/projectors/runner"
	"shopstream/projectors/runner/runnertest"
	"shopstream/schemas"
)

// Ids as the write side makes them: orders and products are UUIDs.
const (
	orderID    = "0193f5a0-0000-7000-8000-00000000000a"
	customerID = "0193f5a0-0000-7000-8000-0000000000c1"
	maillot    = "0193f5a0-0000-7000-8000-0000000000a1"
	gourde     = "0193f5a0-0000-7000-8000-0000000000a2"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func minute(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }

// deadline is the saga's deadline of the order's payment.
var deadline = minute(11)

// env is an event as the write side records it: the aggregate is the
// order for the orders, payments, invoices and emails topics, the product
// for the stock topic; versions count per aggregate.
func env(topic, aggregateID string, version int64, at time.Time, ev schemas.Event) eventlog.Envelope {
	return eventlog.Envelope{Topic: topic, Event: ev, Meta: eventlog.Metadata{
		EventID: fmt.Sprintf("%s/%s/%d", topic, aggregateID, version), Type: ev.EventType(),
		AggregateID: aggregateID, AggregateVersion: version, OccurredAt: at}}
}

// The facts of one card order of 2 maillots and 1 gourde. The products'
// stock streams are at different versions: other orders use them too.
var (
	placed = env(schemas.TopicOrders, orderID, 1, minute(0), schemas.OrderPlaced{OrderID: orderID, CustomerID: customerID, PaymentMethod: "card",
		Items:      []schemas.OrderLine{{ProductID: maillot, Quantity: 2, UnitPriceCents: 1500}, {ProductID: gourde, Quantity: 1, UnitPriceCents: 4999}},
		TotalCents: 7999})
	reservedMaillot = env(schemas.TopicStock, maillot, 4, minute(1), schemas.StockReserved{ProductID: maillot, OrderID: orderID, Quantity: 2, Remaining: 8})
	reservedGourde  = env(schemas.TopicStock, gourde, 2, minute(1), schemas.StockReserved{ProductID: gourde, OrderID: orderID, Quantity: 1, Remaining: 0})
	rejectedGourde  = env(schemas.TopicStock, gourde, 2, minute(1), schemas.StockReservationRejected{ProductID: gourde, OrderID: orderID, Quantity: 1, Available: 0})
	payRequested    = env(schemas.TopicPayments, orderID, 1, minute(1), schemas.PaymentRequested{OrderID: orderID, Method: "card", AmountCents: 7999})
	paySucceeded    = env(schemas.TopicPayments, orderID, 2, minute(2), schemas.PaymentSucceeded{OrderID: orderID, Method: "card", AmountCents: 7999, ProviderReference: "psp_ch_123"})
	payFailed       = env(schemas.TopicPayments, orderID, 2, minute(2), schemas.PaymentFailed{OrderID: orderID, Method: "card", Reason: "card_declined"})
	confirmed       = env(schemas.TopicOrders, orderID, 2, minute(3), schemas.OrderConfirmed{OrderID: orderID})
	cancelledOOS    = env(schemas.TopicOrders, orderID, 2, minute(1), schemas.OrderCancelled{OrderID: orderID, Reason: "out_of_stock"})
	cancelledPF     = env(schemas.TopicOrders, orderID, 2, minute(3), schemas.OrderCancelled{OrderID: orderID, Reason: "payment_failed"})
	releasedMaillot = env(schemas.TopicStock, maillot, 5, minute(3), schemas.StockReleased{ProductID: maillot, OrderID: orderID, Quantity: 2, Reason: "payment_failed"})
	releasedGourde  = env(schemas.TopicStock, gourde, 3, minute(3), schemas.StockReleased{ProductID: gourde, OrderID: orderID, Quantity: 1, Reason: "payment_failed"})
	invoiced        = env(schemas.TopicInvoices, orderID, 1, minute(4), schemas.InvoiceIssued{OrderID: orderID, InvoiceNumber: "2026-000042", CustomerID: customerID, TotalCents: 7999, DocumentRef: "billing/documents/" + orderID})
	emailRequested  = env(schemas.TopicEmails, orderID, 1, minute(4), schemas.EmailRequested{OrderID: orderID, To: "ada@example.com", Subject: "Your shopstream invoice 2026-000042", Template: "invoice"})
	sentAt          = minute(5).Add(1500 * time.Microsecond)
	emailSent       = env(schemas.TopicEmails, orderID, 2, minute(6), schemas.EmailSent{OrderID: orderID, To: "ada@example.com", MessageID: "<m1@shopstream>", SentAt: sentAt})
)

func fold(envs ...eventlog.Envelope) orderviews.View {
	var v orderviews.View
	for _, e := range envs {
		v = orderviews.Apply(v, e)
	}
	return v
}

func history(changes ...any) []orderviews.Change {
	var out []orderviews.Change
	for i := 0; i < len(changes); i += 2 {
		out = append(out, orderviews.Change{Status: changes[i].(string), At: changes[i+1].(time.Time)})
	}
	return out
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

func TestApply(t *testing.T) {
	cases := []struct {
		name  string
		given []eventlog.Envelope
		check func(t *testing.T, v orderviews.View)
	}{
		{"placed", []eventlog.Envelope{placed}, func(t *testing.T, v orderviews.View) {
			wantItems := []orderviews.Item{{ProductID: maillot, Quantity: 2, UnitPriceCents: 1500}, {ProductID: gourde, Quantity: 1, UnitPriceCents: 4999}}
			if !v.Placed || !v.PlacedAt.Equal(t0) || v.CustomerID != customerID || v.PaymentMethod != "card" || v.TotalCents != 7999 ||
				!reflect.DeepEqual(v.Items, wantItems) || v.PaymentStatus != "" || v.Invoice != nil || len(v.Reserved) != 0 {
				t.Fatalf("%+v", v)
			}
			if v.Status() != orderviews.StatusPlaced || !reflect.DeepEqual(v.History(), history(orderviews.StatusPlaced, t0)) {
				t.Fatalf("status %q, history %+v", v.Status(), v.History())
			}
		}},
		{"stock reserved for every line", []eventlog.Envelope{placed, reservedMaillot, reservedGourde}, func(t *testing.T, v orderviews.View) {
			if v.Status() != orderviews.StatusStockReserved || !reflect.DeepEqual(sorted(v.Reserved), []string{maillot, gourde}) {
				t.Fatalf("status %q, reserved %v", v.Status(), v.Reserved)
			}
			if want := history(orderviews.StatusPlaced, t0, orderviews.StatusStockReserved, minute(1)); !reflect.DeepEqual(v.History(), want) {
				t.Fatalf("history %+v, want %+v", v.History(), want)
			}
		}},
		{"stock reserved for some lines only", []eventlog.Envelope{placed, reservedMaillot}, func(t *testing.T, v orderviews.View) {
			if v.Status() != orderviews.StatusPlaced || !reflect.DeepEqual(v.Reserved, []string{maillot}) || len(v.History()) != 1 {
				t.Fatalf("status %q, reserved %v, history %+v", v.Status(), v.Reserved, v.History())
			}
		}},
		{"stock reserved twice for one line does not count as two lines", []eventlog.Envelope{placed, reservedMaillot,
			env(schemas.TopicStock, maillot, 6, minute(2), schemas.StockReserved{ProductID: maillot, OrderID: orderID, Quantity: 2, Remaining: 6})}, func(t *testing.T, v orderviews.View) {
			if v.Status() != orderviews.StatusPlaced || len(v.Reserved) != 1 {
				t.Fatalf("status %q, reserved %v", v.Status(), v.Reserved)
			}
		}},
		{"payment requested", []eventlog.Envelope{placed, reservedMaillot, reservedGourde, payRequested}, func(t *testing.T, v orderviews.View) {
			if v.PaymentStatus != "requested" || v.Status() != orderviews.StatusStockReserved || len(v.History()) != 2 {
				t.Fatalf("payment %q, status %q, history %+v", v.PaymentStatus, v.Status(), v.History())
			}
		}},
		{"payment requested with a deadline: the order shows it until the outcome", []eventlog.Envelope{placed, reservedMaillot, reservedGourde,
			env(schemas.TopicPayments, orderID, 1, minute(1), schemas.PaymentRequested{OrderID: orderID, Method: "card", AmountCents: 7999, ExpiresAt: &deadline})},
			func(t *testing.T, v orderviews.View) {
				if v.PaymentDeadline == nil || !v.PaymentDeadline.Equal(deadline) {
					t.Fatalf("payment deadline %v, want %v", v.PaymentDeadline, deadline)
				}
			}},
		{"the deadline goes with the outcome", []eventlog.Envelope{placed, reservedMaillot, reservedGourde,
			env(schemas.TopicPayments, orderID, 1, minute(1), schemas.PaymentRequested{OrderID: orderID, Method: "card", AmountCents: 7999, ExpiresAt: &deadline}), paySucceeded},
			func(t *testing.T, v orderviews.View) {
				if v.PaymentDeadline != nil {
					t.Fatalf("payment deadline %v after the payment succeeded, want none", v.PaymentDeadline)
				}
			}},
		{"paid", []eventlog.Envelope{placed, reservedMaillot, reservedGourde, payRequested, paySucceeded}, func(t *testing.T, v orderviews.View) {
			if v.PaymentStatus != "succeeded" || v.PaymentRef != "psp_ch_123" || v.Status() != orderviews.StatusPaid {
				t.Fatalf("payment %q ref %q, status %q", v.PaymentStatus, v.PaymentRef, v.Status())
			}
			if last := v.History()[len(v.History())-1]; last != (orderviews.Change{Status: orderviews.StatusPaid, At: minute(2)}) {
				t.Fatalf("history %+v", v.History())
			}
		}},
		{"confirmed: each status change once, at its event's time", []eventlog.Envelope{placed, reservedMaillot, reservedGourde, payRequested, paySucceeded, confirmed}, func(t *testing.T, v orderviews.View) {
			if !v.Confirmed || v.Status() != orderviews.StatusConfirmed || v.CancelReason != "" {
				t.Fatalf("%+v", v)
			}
			want := history(orderviews.StatusPlaced, t0, orderviews.StatusStockReserved, minute(1), orderviews.StatusPaid, minute(2), orderviews.StatusConfirmed, minute(3))
			if !reflect.DeepEqual(v.History(), want) {
				t.Fatalf("history %+v, want %+v", v.History(), want)
			}
		}},
		{"cancelled out of stock", []eventlog.Envelope{placed, rejectedGourde, cancelledOOS}, func(t *testing.T, v orderviews.View) {
			if v.Status() != orderviews.StatusCancelled || v.CancelReason != "out_of_stock" || len(v.Reserved) != 0 || v.PaymentStatus != "" {
				t.Fatalf("status %q, %+v", v.Status(), v)
			}
			if want := history(orderviews.StatusPlaced, t0, orderviews.StatusCancelled, minute(1)); !reflect.DeepEqual(v.History(), want) {
				t.Fatalf("history %+v, want %+v", v.History(), want)
			}
		}},
		{"cancelled payment failed, units released", []eventlog.Envelope{placed, reservedMaillot, reservedGourde, payRequested, payFailed, cancelledPF, releasedMaillot, releasedGourde}, func(t *testing.T, v orderviews.View) {
			if v.Status() != orderviews.StatusCancelled || v.CancelReason != "payment_failed" || v.PaymentStatus != "failed" || len(v.Reserved) != 0 || v.Confirmed {
				t.Fatalf("status %q, %+v", v.Status(), v)
			}
			if want := history(orderviews.StatusPlaced, t0, orderviews.StatusStockReserved, minute(1), orderviews.StatusCancelled, minute(3)); !reflect.DeepEqual(v.History(), want) {
				t.Fatalf("history %+v, want %+v", v.History(), want)
			}
		}},
		{"payment failed, nothing released yet", []eventlog.Envelope{placed, reservedMaillot, reservedGourde, payRequested, payFailed}, func(t *testing.T, v orderviews.View) {
			if v.PaymentStatus != "failed" || v.Status() != orderviews.StatusStockReserved || len(v.Reserved) != 2 {
				t.Fatalf("payment %q, status %q, reserved %v", v.PaymentStatus, v.Status(), v.Reserved)
			}
		}},
		{"one product released, the other still held", []eventlog.Envelope{placed, reservedMaillot, reservedGourde, releasedMaillot}, func(t *testing.T, v orderviews.View) {
			if !reflect.DeepEqual(v.Reserved, []string{gourde}) {
				t.Fatalf("reserved %v", v.Reserved)
			}
		}},
		{"invoice issued", []eventlog.Envelope{placed, invoiced}, func(t *testing.T, v orderviews.View) {
			if v.Invoice == nil || v.Invoice.Number != "2026-000042" || !v.Invoice.IssuedAt.Equal(minute(4)) || v.Invoice.EmailedAt != nil {
				t.Fatalf("invoice %+v", v.Invoice)
			}
		}},
		{"invoice issued, then emailed", []eventlog.Envelope{placed, invoiced, emailRequested, emailSent}, func(t *testing.T, v orderviews.View) {
			want := sentAt.Truncate(time.Millisecond)
			if v.Invoice == nil || v.Invoice.Number != "2026-000042" || !v.Invoice.IssuedAt.Equal(minute(4)) || v.Invoice.EmailedAt == nil || !v.Invoice.EmailedAt.Equal(want) {
				t.Fatalf("invoice %+v (emailed at %v), want emailed at %v", v.Invoice, v.Invoice.EmailedAt, want)
			}
		}},
		// The emails and invoices topics are read apart: the email can be
		// folded first.
		{"email sent folded before the invoice", []eventlog.Envelope{placed, emailRequested, emailSent, invoiced}, func(t *testing.T, v orderviews.View) {
			if v.Invoice == nil || v.Invoice.Number != "2026-000042" || !v.Invoice.IssuedAt.Equal(minute(4)) || v.Invoice.EmailedAt == nil || !v.Invoice.EmailedAt.Equal(sentAt.Truncate(time.Millisecond)) {
				t.Fatalf("invoice %+v", v.Invoice)
			}
		}},
		{"invoice events change no status", []eventlog.Envelope{placed, invoiced, emailSent}, func(t *testing.T, v orderviews.View) {
			if v.Status() != orderviews.StatusPlaced || len(v.History()) != 1 {
				t.Fatalf("status %q, history %+v", v.Status(), v.History())
			}
		}},
		// Each product's stock is its own stream: the gourde's version 2
		// is not stale because the maillot's stream is at 4.
		{"stock events of two products are separate streams", []eventlog.Envelope{placed, reservedMaillot, reservedGourde}, func(t *testing.T, v orderviews.View) {
			want := runner.Applied{"order": 1, "stock_" + maillot: 4, "stock_" + gourde: 2}
			if !reflect.DeepEqual(v.Applied, want) || len(v.Reserved) != 2 {
				t.Fatalf("applied %v, reserved %v", v.Applied, v.Reserved)
			}
		}},
		{"a topic the projection does not read", []eventlog.Envelope{placed,
			env(schemas.TopicSepaRequests, orderID, 2, minute(1), schemas.SepaTransferRequested{OrderID: orderID, CustomerID: customerID, AmountCents: 7999})}, func(t *testing.T, v orderviews.View) {
			if !reflect.DeepEqual(v, fold(placed)) {
				t.Fatalf("%+v", v)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.check(t, fold(c.given...)) })
	}
}

// An event at or below the version its stream has applied changes
// nothing, whatever it says.
func TestApplySkipsStaleEvents(t *testing.T) {
	doc := fold(placed, reservedMaillot, reservedGourde, payRequested, paySucceeded, confirmed, invoiced, emailRequested, emailSent)
	stale := []struct {
		name string
		env  eventlog.Envelope
	}{
		{"order placed again, other total", env(schemas.TopicOrders, orderID, 1, minute(9), schemas.OrderPlaced{OrderID: orderID, CustomerID: "other", TotalCents: 1})},
		{"cancel at the confirm's version", env(schemas.TopicOrders, orderID, 2, minute(9), schemas.OrderCancelled{OrderID: orderID, Reason: "payment_failed"})},
		{"payment failed at the success's version", env(schemas.TopicPayments, orderID, 2, minute(9), payFailed.Event)},
		{"payment requested again", env(schemas.TopicPayments, orderID, 1, minute(9), payRequested.Event)},
		{"release below the product's stream version", env(schemas.TopicStock, maillot, 3, minute(9), schemas.StockReleased{ProductID: maillot, OrderID: orderID, Quantity: 2})},
		{"release at the product's stream version", env(schemas.TopicStock, gourde, 2, minute(9), schemas.StockReleased{ProductID: gourde, OrderID: orderID, Quantity: 1})},
		{"invoice issued again, other number", env(schemas.TopicInvoices, orderID, 1, minute(9), schemas.InvoiceIssued{OrderID: orderID, InvoiceNumber: "2026-999999"})},
		{"email sent again, other time", env(schemas.TopicEmails, orderID, 2, minute(9), schemas.EmailSent{OrderID: orderID, SentAt: minute(9)})},
	}
	for _, s := range stale {
		t.Run(s.name, func(t *testing.T) {
			if got := orderviews.Apply(doc, s.env); !reflect.DeepEqual(got, doc) {
				t.Fatalf("changed the document:\n got %+v\nwant %+v", got, doc)
			}
		})
	}
	// The same events one version higher are news: the guard, not the
	// event's content, is what kept them out above.
	if got := orderviews.Apply(doc, env(schemas.TopicStock, maillot, 7, minute(9), schemas.StockReleased{ProductID: maillot, OrderID: orderID, Quantity: 2})); slices.Contains(got.Reserved, maillot) {
		t.Fatalf("a new release was skipped: reserved %v", got.Reserved)
	}
}

func TestDocID(t *testing.T) {
	cases := []struct {
		name string
		env  eventlog.Envelope
		want string
	}{
		{"order event: its aggregate", placed, orderID},
		{"payment event: its aggregate, the order", paySucceeded, orderID},
		{"invoice event: its aggregate, the order", invoiced, orderID},
		{"email event: its aggregate, the order", emailSent, orderID},
		{"stock reserved: the order, not the product", reservedMaillot, orderID},
		{"stock reservation rejected: the order", rejectedGourde, orderID},
		{"stock released: the order", releasedGourde, orderID},
		{"stock received: no order", env(schemas.TopicStock, maillot, 1, t0, schemas.StockReceived{ProductID: maillot, Quantity: 10, Available: 10, CatalogVersion: 1}), ""},
		{"product sold out: no order", env(schemas.TopicStock, gourde, 3, t0, schemas.ProductSoldOut{ProductID: gourde}), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := orderviews.DocID(c.env); got != c.want {
				t.Fatalf("DocID = %q, want %q", got, c.want)
			}
		})
	}
	if orderviews.Projection().DocID == nil || orderviews.Projection().DocID(reservedMaillot) != orderID {
		t.Fatal("the projection does not route by DocID")
	}
}

func TestStatus(t *testing.T) {
	two := []orderviews.Item{{ProductID: maillot, Quantity: 2}, {ProductID: gourde, Quantity: 1}}
	cases := []struct {
		name string
		v    orderviews.View
		want string
	}{
		{"nothing known", orderviews.View{}, ""},
		{"stock reserved, order not read yet", orderviews.View{Reserved: []string{maillot}}, ""},
		{"placed", orderviews.View{Placed: true, Items: two}, orderviews.StatusPlaced},
		{"one line of two reserved", orderviews.View{Placed: true, Items: two, Reserved: []string{maillot}}, orderviews.StatusPlaced},
		{"every line reserved", orderviews.View{Placed: true, Items: two, Reserved: []string{gourde, maillot}}, orderviews.StatusStockReserved},
		{"no items: never stock_reserved", orderviews.View{Placed: true}, orderviews.StatusPlaced},
		{"payment requested", orderviews.View{Placed: true, Items: two, Reserved: []string{gourde, maillot}, PaymentStatus: "requested"}, orderviews.StatusStockReserved},
		{"payment failed, units held", orderviews.View{Placed: true, Items: two, Reserved: []string{gourde, maillot}, PaymentStatus: "failed"}, orderviews.StatusStockReserved},
		{"paid", orderviews.View{Placed: true, Items: two, Reserved: []string{gourde, maillot}, PaymentStatus: "succeeded"}, orderviews.StatusPaid},
		{"confirmed", orderviews.View{Placed: true, Items: two, PaymentStatus: "succeeded", Confirmed: true}, orderviews.StatusConfirmed},
		{"cancelled", orderviews.View{Placed: true, Items: two, PaymentStatus: "failed", CancelReason: "payment_failed"}, orderviews.StatusCancelled},
		{"a cancel reason wins", orderviews.View{Placed: true, Confirmed: true, CancelReason: "out_of_stock"}, orderviews.StatusCancelled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.v.Status(); got != c.want {
				t.Fatalf("Status() = %q, want %q", got, c.want)
			}
		})
	}
}

// The orders, stock and payments topics are consumed apart, so an order's
// facts reach the fold in any order that keeps each stream's own order.
// The status comes out the same whatever that order (the package's
// promise); so should the history: each status once, at its event's time.
func TestApplyHistoryDoesNotDependOnArrivalOrder(t *testing.T) {
	confirmedHistory := history(orderviews.StatusPlaced, t0, orderviews.StatusStockReserved, minute(1), orderviews.StatusPaid, minute(2), orderviews.StatusConfirmed, minute(3))
	cases := []struct {
		name        string
		arrival     []eventlog.Envelope
		wantStatus  string
		wantHistory []orderviews.Change
	}{
		{"confirmed, in write order", []eventlog.Envelope{placed, reservedMaillot, reservedGourde, payRequested, paySucceeded, confirmed},
			orderviews.StatusConfirmed, confirmedHistory},
		// The saga releases the units and cancels in one transaction, the
		// releases first: the outbox publishes them first too.
		{"payment failed, units released before the cancel is read", []eventlog.Envelope{placed, reservedMaillot, reservedGourde, payRequested, payFailed, releasedGourde, releasedMaillot, cancelledPF},
			orderviews.StatusCancelled, history(orderviews.StatusPlaced, t0, orderviews.StatusStockReserved, minute(1), orderviews.StatusCancelled, minute(3))},
		// A rebuild reads the stock topic's partition ahead of the
		// orders topic's.
		{"stock reserved read before the order", []eventlog.Envelope{reservedMaillot, reservedGourde, placed, payRequested, paySucceeded, confirmed},
			orderviews.StatusConfirmed, confirmedHistory},
		{"payment read before the stock", []eventlog.Envelope{placed, payRequested, paySucceeded, reservedMaillot, reservedGourde, confirmed},
			orderviews.StatusConfirmed, confirmedHistory},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := fold(c.arrival...)
			if v.Status() != c.wantStatus {
				t.Errorf("status %q, want %q", v.Status(), c.wantStatus)
			}
			if !reflect.DeepEqual(v.History(), c.wantHistory) {
				t.Errorf("history\n got %+v\nwant %+v", v.History(), c.wantHistory)
			}
		})
	}
}

// Events of one order come from several partitions (the stock topic is
// keyed by product); a replay reads them interleaved otherwise than the
// live projector did, and the document must not change. The load test's
// replay check (I4) found the reserved products listed in arrival order.
func TestApplyViewDoesNotDependOnPartitionInterleaving(t *testing.T) {
	live := fold(placed, reservedMaillot, reservedGourde, payRequested, paySucceeded, confirmed)
	for _, arrival := range [][]eventlog.Envelope{
		{placed, reservedGourde, reservedMaillot, payRequested, paySucceeded, confirmed},
		{reservedGourde, placed, payRequested, reservedMaillot, paySucceeded, confirmed},
		{placed, payRequested, paySucceeded, confirmed, reservedGourde, reservedMaillot},
	} {
		if got := fold(arrival...); !reflect.DeepEqual(got, live) {
			t.Errorf("another interleaving gives another document:\n got %+v\nwant %+v", got, live)
		}
	}
}

// orderLog builds the log of several orders as the write side writes it:
// each event numbered in its aggregate's stream (the order, the payment
// keyed by order id, one stock aggregate per product shared by every
// order), one minute apart.
type orderLog struct {
	versions map[string]int64
	envs     []eventlog.Envelope
}

func (l *orderLog) add(topic, aggregateID string, ev schemas.Event) {
	if l.versions == nil {
		l.versions = map[string]int64{}
	}
	stream := topic
	if topic == schemas.TopicSepaRequests {
		stream = schemas.TopicPayments // the payment aggregate writes to both topics
	}
	stream += "/" + aggregateID
	l.versions[stream]++
	l.envs = append(l.envs, env(topic, aggregateID, l.versions[stream], minute(len(l.envs)), ev))
}

func TestApplyIsIdempotent(t *testing.T) {
	const (
		card          = "0193f5a0-0000-7000-8000-0000000000b1" // paid by card, confirmed, invoiced, emailed
		short         = "0193f5a0-0000-7000-8000-0000000000b2" // cancelled out_of_stock
		failed        = "0193f5a0-0000-7000-8000-0000000000b3" // payment failed, units released, cancelled
		sepa          = "0193f5a0-0000-7000-8000-0000000000b4" // paid by SEPA transfer, confirmed
		shortCustomer = "0193f5a0-0000-7000-8000-0000000000c2"
	)
	var l orderLog
	stock := func(ev schemas.Event, productID string) { l.add(schemas.TopicStock, productID, ev) }
	line := func(p string, q int32, price int64) schemas.OrderLine {
		return schemas.OrderLine{ProductID: p, Quantity: q, UnitPriceCents: price}
	}
	stock(schemas.StockReceived{ProductID: maillot, Quantity: 6, Available: 6, CatalogVersion: 1}, maillot)
	stock(schemas.StockReceived{ProductID: gourde, Quantity: 2, Available: 2, CatalogVersion: 1}, gourde)

	l.add(schemas.TopicOrders, card, schemas.OrderPlaced{OrderID: card, CustomerID: customerID, PaymentMethod: "card", Items: []schemas.OrderLine{line(maillot, 2, 1500), line(gourde, 1, 4999)}, TotalCents: 7999})
	l.add(schemas.TopicOrders, failed, schemas.OrderPlaced{OrderID: failed, CustomerID: customerID, PaymentMethod: "card", Items: []schemas.OrderLine{line(maillot, 1, 1500), line(gourde, 1, 4999)}, TotalCents: 6499})
	stock(schemas.StockReserved{ProductID: gourde, OrderID: card, Quantity: 1, Remaining: 1}, gourde)
	stock(schemas.StockReserved{ProductID: maillot, OrderID: card, Quantity: 2, Remaining: 4}, maillot)
	l.add(schemas.TopicPayments, card, schemas.PaymentRequested{OrderID: card, Method: "card", AmountCents: 7999})
	stock(schemas.StockReserved{ProductID: gourde, OrderID: failed, Quantity: 1, Remaining: 0}, gourde)
	stock(schemas.ProductSoldOut{ProductID: gourde}, gourde)
	stock(schemas.StockReserved{ProductID: maillot, OrderID: failed, Quantity: 1, Remaining: 3}, maillot)
	l.add(schemas.TopicPayments, failed, schemas.PaymentRequested{OrderID: failed, Method: "card", AmountCents: 6499})

	l.add(schemas.TopicOrders, short, schemas.OrderPlaced{OrderID: short, CustomerID: shortCustomer, PaymentMethod: "card", Items: []schemas.OrderLine{line(gourde, 1, 4999)}, TotalCents: 4999})
	stock(schemas.StockReservationRejected{ProductID: gourde, OrderID: short, Quantity: 1, Available: 0}, gourde)
	l.add(schemas.TopicOrders, short, schemas.OrderCancelled{OrderID: short, Reason: "out_of_stock"})

	l.add(schemas.TopicPayments, card, schemas.PaymentSucceeded{OrderID: card, Method: "card", AmountCents: 7999, ProviderReference: "psp_ch_1"})
	l.add(schemas.TopicPayments, failed, schemas.PaymentFailed{OrderID: failed, Method: "card", Reason: "card_declined"})
	l.add(schemas.TopicOrders, card, schemas.OrderConfirmed{OrderID: card})
	// The saga's compensation: releases, then the cancel, in one transaction.
	stock(schemas.StockReleased{ProductID: maillot, OrderID: failed, Quantity: 1, Reason: "payment_failed"}, maillot)
	stock(schemas.StockReleased{ProductID: gourde, OrderID: failed, Quantity: 1, Reason: "payment_failed"}, gourde)
	l.add(schemas.TopicOrders, failed, schemas.OrderCancelled{OrderID: failed, Reason: "payment_failed"})

	l.add(schemas.TopicOrders, sepa, schemas.OrderPlaced{OrderID: sepa, CustomerID: customerID, PaymentMethod: "sepa", Items: []schemas.OrderLine{line(maillot, 3, 1500)}, TotalCents: 4500})
	stock(schemas.StockReserved{ProductID: maillot, OrderID: sepa, Quantity: 3, Remaining: 1}, maillot)
	l.add(schemas.TopicPayments, sepa, schemas.PaymentRequested{OrderID: sepa, Method: "sepa", AmountCents: 4500})
	l.add(schemas.TopicSepaRequests, sepa, schemas.SepaTransferRequested{OrderID: sepa, CustomerID: customerID, AmountCents: 4500})
	l.add(schemas.TopicInvoices, card, schemas.InvoiceIssued{OrderID: card, InvoiceNumber: "2026-000001", CustomerID: customerID, TotalCents: 7999})
	l.add(schemas.TopicEmails, card, schemas.EmailRequested{OrderID: card, To: "ada@example.com", Subject: "Your shopstream invoice 2026-000001", Template: "invoice"})
	l.add(schemas.TopicPayments, sepa, schemas.PaymentSucceeded{OrderID: sepa, Method: "sepa", AmountCents: 4500, ProviderReference: "sepa_1"}) // payment version 3
	l.add(schemas.TopicEmails, card, schemas.EmailSent{OrderID: card, To: "ada@example.com", MessageID: "<m1@shopstream>", SentAt: minute(40)})
	l.add(schemas.TopicOrders, sepa, schemas.OrderConfirmed{OrderID: sepa})
	stock(schemas.StockReceived{ProductID: gourde, Quantity: 5, Available: 6, CatalogVersion: 2}, gourde)

	// The log means something: check the clean pass first.
	docs := runnertest.Fold(orderviews.Apply, orderviews.DocID, l.envs)
	if len(docs) != 4 {
		t.Fatalf("%d documents, want 4: %v", len(docs), slices.Sorted(maps.Keys(docs)))
	}
	if v := docs[card]; v.Status() != orderviews.StatusConfirmed || v.PaymentRef != "psp_ch_1" || len(v.Reserved) != 2 ||
		v.Invoice == nil || v.Invoice.Number != "2026-000001" || v.Invoice.EmailedAt == nil || !v.Invoice.EmailedAt.Equal(minute(40)) {
		t.Errorf("card order: status %q, %+v, invoice %+v", v.Status(), v, v.Invoice)
	}
	if v := docs[short]; v.Status() != orderviews.StatusCancelled || v.CancelReason != "out_of_stock" || v.CustomerID != shortCustomer || len(v.Reserved) != 0 {
		t.Errorf("short order: status %q, %+v", v.Status(), v)
	}
	if v := docs[failed]; v.Status() != orderviews.StatusCancelled || v.CancelReason != "payment_failed" || v.PaymentStatus != "failed" || len(v.Reserved) != 0 {
		t.Errorf("failed order: status %q, %+v", v.Status(), v)
	}
	if v := docs[sepa]; v.Status() != orderviews.StatusConfirmed || v.PaymentRef != "sepa_1" || v.PaymentMethod != "sepa" || v.Applied["payment"] != 3 || v.Invoice != nil {
		t.Errorf("sepa order: status %q, %+v", v.Status(), v)
	}
	runnertest.Idempotent(t, orderviews.Apply, orderviews.DocID, l.envs)
}
