// Package orderviews projects an order's whole life into the orders read
// model: one MongoDB document per order with its items and totals, its
// status (placed, stock_reserved, paid, confirmed, cancelled) and cancel
// reason, its payment, its invoice (issued_at, emailed_at) and a history of
// status changes. It consumes the orders, stock, payments, invoices and
// emails topics in the group shop.projector.orders.v<N>.
//
// The facts of an order arrive on several topics, so not in one order:
// the document records facts (placed, lines reserved, paid, confirmed,
// cancelled), each with the time of its event, and derives its status and
// its history from them. The same events in any arrival order give the
// same document, so a rebuild equals the live read model. Each source
// stream's highest applied aggregate version guards the fold: replays and
// redeliveries change nothing.
package orderviews

import (
	"maps"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"shopstream/internal/platform/eventlog"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// Version of the projection; bump it to rebuild from the log on purpose.
// v2 added placed_at (GET /customers/{id}/orders sorts by it).
// v3 keeps reserved sorted (it listed products in arrival order, which a
// replay does not repeat).
// v4 adds payment_deadline (PaymentRequested v2's expires_at).
const Version = 4

// View is the read-model document of an order.
type View struct {
	Placed        bool      `bson:"placed"`
	PlacedAt      time.Time `bson:"placed_at"`
	CustomerID    string    `bson:"customer_id"`
	PaymentMethod string    `bson:"payment_method"`
	Items         []Item    `bson:"items"`
	TotalCents    int64     `bson:"total_cents"`
	Reserved      []string  `bson:"reserved"` // products whose units are held, sorted
	// ReservedAt is when each product's units were first reserved (kept
	// after a release: it is the history's fact).
	ReservedAt    map[string]time.Time `bson:"reserved_at"`
	PaymentStatus string               `bson:"payment_status"`
	PaymentRef    string               `bson:"payment_ref"`
	// PaymentDeadline is the saga's pending deadline for the payment's
	// outcome, while the payment has none and the order is open.
	PaymentDeadline *time.Time     `bson:"payment_deadline"`
	PaidAt          *time.Time     `bson:"paid_at"`
	Confirmed       bool           `bson:"confirmed"`
	ConfirmedAt     *time.Time     `bson:"confirmed_at"`
	CancelReason    string         `bson:"cancel_reason"`
	CancelledAt     *time.Time     `bson:"cancelled_at"`
	Invoice         *Invoice       `bson:"invoice"`
	Applied         runner.Applied `bson:"applied"`
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
		// An order's document is created by its placement, the first
		// event of its stream.
		Creates: func(env eventlog.Envelope) bool {
			return env.Topic == schemas.TopicOrders && env.Meta.AggregateVersion == 1
		},
		Indexes:  []mongo.IndexModel{{Keys: bson.D{{Key: "customer_id", Value: 1}, {Key: "placed_at", Value: -1}}}},
		Readable: bson.E{Key: "placed", Value: true},
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

// Status derives an order's status from its facts; "" until the order's
// placement is folded.
func (v View) Status() string {
	switch {
	case !v.Placed:
		return ""
	case v.CancelReason != "":
		return StatusCancelled
	case v.Confirmed:
		return StatusConfirmed
	case v.PaymentStatus == "succeeded":
		return StatusPaid
	case len(v.Items) > 0 && len(v.Reserved) >= len(v.Items):
		return StatusStockReserved
	}
	return StatusPlaced
}

// History lists the statuses the order went through, in lifecycle order,
// each at the time of the event that caused it: placed, stock_reserved
// (when the last line was reserved), paid, then confirmed or cancelled.
// It is derived from the facts, so it does not depend on the order in
// which the topics delivered them.
func (v View) History() []Change {
	if !v.Placed {
		return nil
	}
	h := []Change{{Status: StatusPlaced, At: v.PlacedAt}}
	if at, ok := v.allReservedAt(); ok {
		h = append(h, Change{Status: StatusStockReserved, At: at})
	}
	for _, c := range []struct {
		status string
		at     *time.Time
	}{{StatusPaid, v.PaidAt}, {StatusConfirmed, v.ConfirmedAt}, {StatusCancelled, v.CancelledAt}} {
		if c.at != nil {
			h = append(h, Change{Status: c.status, At: *c.at})
		}
	}
	return h
}

// allReservedAt is when the last of the order's lines was first reserved.
func (v View) allReservedAt() (time.Time, bool) {
	var last time.Time
	for _, it := range v.Items {
		at, ok := v.ReservedAt[it.ProductID]
		if !ok {
			return time.Time{}, false
		}
		if at.After(last) {
			last = at
		}
	}
	return last, len(v.Items) > 0
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
	if v.Applied, ok = v.Applied.Record(stream, env.Meta.AggregateVersion); !ok {
		return v
	}
	at := env.Meta.OccurredAt.UTC().Truncate(time.Millisecond)
	switch e := env.Event.(type) {
	case schemas.OrderPlaced:
		v.Placed, v.PlacedAt, v.CustomerID, v.PaymentMethod, v.TotalCents = true, at, e.CustomerID, e.PaymentMethod, e.TotalCents
		v.Items = make([]Item, len(e.Items))
		for i, l := range e.Items {
			v.Items[i] = Item{ProductID: l.ProductID, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents}
		}
	case schemas.StockReserved:
		// Kept sorted: reservations of different products come from
		// different partitions, in an order a replay does not repeat.
		if i, found := slices.BinarySearch(v.Reserved, e.ProductID); !found {
			v.Reserved = slices.Insert(slices.Clone(v.Reserved), i, e.ProductID)
		}
		if _, seen := v.ReservedAt[e.ProductID]; !seen {
			v.ReservedAt = maps.Clone(v.ReservedAt)
			if v.ReservedAt == nil {
				v.ReservedAt = map[string]time.Time{}
			}
			v.ReservedAt[e.ProductID] = at
		}
	case schemas.StockReleased:
		v.Reserved = slices.DeleteFunc(slices.Clone(v.Reserved), func(p string) bool { return p == e.ProductID })
	case schemas.PaymentRequested:
		if v.PaymentStatus == "" {
			v.PaymentStatus = "requested"
			v.PaymentDeadline = e.ExpiresAt
		}
	case schemas.PaymentSucceeded:
		v.PaymentStatus, v.PaymentRef, v.PaidAt, v.PaymentDeadline = "succeeded", e.ProviderReference, &at, nil
	case schemas.PaymentFailed:
		v.PaymentStatus, v.PaymentDeadline = "failed", nil
	case schemas.OrderConfirmed:
		v.Confirmed, v.ConfirmedAt, v.PaymentDeadline = true, &at, nil
	case schemas.OrderCancelled:
		v.CancelReason, v.CancelledAt, v.PaymentDeadline = e.Reason, &at, nil
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
	return v
}
