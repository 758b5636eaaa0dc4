// Package orders projects an order's whole life into the orders read
// model: one MongoDB document per order with its items and totals, its
// status (placed, stock_reserved, paid, confirmed, cancelled) and cancel
// reason, its payment, its invoice (issued_at, emailed_at) and a history of
// status changes. It consumes the orders, stock, payments, invoices and
// emails topics in the group shop.projector.orders.v<N>.
//
// The facts of an order arrive on several topics, so not in one order:
// the document records facts (placed, lines reserved, paid, confirmed,
// cancelled) and derives its status from them, whatever their arrival
// order. Each source stream's highest applied aggregate version guards the
// fold: replays and redeliveries change nothing.
package orders

import (
	"slices"
	"time"

	"shopstream/internal/eventlog"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// Version of the projection; bump it to rebuild from the log on purpose.
const Version = 1

// View is the read-model document of an order.
type View struct {
	Placed        bool           `bson:"placed"`
	CustomerID    string         `bson:"customer_id"`
	PaymentMethod string         `bson:"payment_method"`
	Items         []Item         `bson:"items"`
	TotalCents    int64          `bson:"total_cents"`
	Reserved      []string       `bson:"reserved"` // products whose units are held
	PaymentStatus string         `bson:"payment_status"`
	PaymentRef    string         `bson:"payment_ref"`
	Confirmed     bool           `bson:"confirmed"`
	CancelReason  string         `bson:"cancel_reason"`
	Invoice       *Invoice       `bson:"invoice"`
	History       []Change       `bson:"history"`
	Applied       runner.Applied `bson:"applied"`
}

// Item is a line of an order.
type Item struct {
	ProductID      string `bson:"product_id"`
	Quantity       int32  `bson:"quantity"`
	UnitPriceCents int64  `bson:"unit_price_cents"`
}

// Invoice is an order's invoice, once issued.
type Invoice struct {
	Number    string     `bson:"number"`
	IssuedAt  time.Time  `bson:"issued_at"`
	EmailedAt *time.Time `bson:"emailed_at"`
}

// Change is one status change, at the time of the event that caused it.
type Change struct {
	Status string    `bson:"status"`
	At     time.Time `bson:"at"`
}

// Statuses, in the order an order goes through them.
const (
	StatusPlaced        = "placed"
	StatusStockReserved = "stock_reserved"
	StatusPaid          = "paid"
	StatusConfirmed     = "confirmed"
	StatusCancelled     = "cancelled"
)

// Projection is the orders projection.
func Projection() runner.Projection[View] {
	return runner.Projection[View]{
		Name:    "orders",
		Version: Version,
		Topics:  []string{schemas.TopicOrders, schemas.TopicStock, schemas.TopicPayments, schemas.TopicInvoices, schemas.TopicEmails},
		DocID:   DocID,
		Apply:   Apply,
	}
}

// DocID is the order an event is about ("" for the stock events of no
// order).
func DocID(env eventlog.Envelope) string {
	switch e := env.Event.(type) {
	case schemas.StockReserved:
		return e.OrderID
	case schemas.StockReservationRejected:
		return e.OrderID
	case schemas.StockReleased:
		return e.OrderID
	case schemas.StockReceived, schemas.ProductSoldOut:
		return ""
	}
	return env.Meta.AggregateID
}

// Status derives an order's status from its facts.
func (v View) Status() string {
	switch {
	case v.CancelReason != "":
		return StatusCancelled
	case v.Confirmed:
		return StatusConfirmed
	case v.PaymentStatus == "succeeded":
		return StatusPaid
	case v.Placed && len(v.Items) > 0 && len(v.Reserved) >= len(v.Items):
		return StatusStockReserved
	case v.Placed:
		return StatusPlaced
	}
	return ""
}

// streams names, without dots (MongoDB keys cannot hold one), the source
// stream of each topic; the stock topic's streams are one per product.
var streams = map[string]string{
	schemas.TopicOrders:   "order",
	schemas.TopicStock:    "stock",
	schemas.TopicPayments: "payment",
	schemas.TopicInvoices: "invoice",
	schemas.TopicEmails:   "email",
}

// Apply folds one event into an order document.
func Apply(v View, env eventlog.Envelope) View {
	stream, ok := streams[env.Topic]
	if !ok {
		return v
	}
	if env.Topic == schemas.TopicStock {
		stream += "_" + env.Meta.AggregateID
	}
	before := v.Status()
	if v.Applied, ok = v.Applied.Record(stream, env.Meta.AggregateVersion); !ok {
		return v
	}
	at := env.Meta.OccurredAt.UTC().Truncate(time.Millisecond)
	switch e := env.Event.(type) {
	case schemas.OrderPlaced:
		v.Placed, v.CustomerID, v.PaymentMethod, v.TotalCents = true, e.CustomerID, e.PaymentMethod, e.TotalCents
		v.Items = make([]Item, len(e.Items))
		for i, l := range e.Items {
			v.Items[i] = Item{ProductID: l.ProductID, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents}
		}
	case schemas.StockReserved:
		if !slices.Contains(v.Reserved, e.ProductID) {
			v.Reserved = append(slices.Clone(v.Reserved), e.ProductID)
		}
	case schemas.StockReleased:
		v.Reserved = slices.DeleteFunc(slices.Clone(v.Reserved), func(p string) bool { return p == e.ProductID })
	case schemas.PaymentRequested:
		if v.PaymentStatus == "" {
			v.PaymentStatus = "requested"
		}
	case schemas.PaymentSucceeded:
		v.PaymentStatus, v.PaymentRef = "succeeded", e.ProviderReference
	case schemas.PaymentFailed:
		v.PaymentStatus = "failed"
	case schemas.OrderConfirmed:
		v.Confirmed = true
	case schemas.OrderCancelled:
		v.CancelReason = e.Reason
	case schemas.InvoiceIssued:
		inv := Invoice{Number: e.InvoiceNumber, IssuedAt: at}
		if v.Invoice != nil {
			inv.EmailedAt = v.Invoice.EmailedAt
		}
		v.Invoice = &inv
	case schemas.EmailSent:
		inv := Invoice{}
		if v.Invoice != nil {
			inv = *v.Invoice
		}
		sent := e.SentAt.UTC().Truncate(time.Millisecond)
		inv.EmailedAt = &sent
		v.Invoice = &inv
	}
	if after := v.Status(); after != before && after != "" {
		v.History = append(slices.Clone(v.History), Change{Status: after, At: at})
	}
	return v
}
