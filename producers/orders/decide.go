// Package orders is the write service of orders, on shop.orders.v1 keyed
// by order id, through the PostgreSQL write model (schema "orders") and the
// outbox. Placing an order checks the customer, the catalogue's current
// prices and the inventory's availability, refusing a sold-out product at
// once; the units themselves are reserved by the order saga, where the
// database enforces that stock never goes below zero.
package orders

import (
	"fmt"

	"github.com/google/uuid"

	"shopstream/internal/platform/command"
	"shopstream/schemas"
)

// Payment methods.
const (
	Card = "card"
	Sepa = "sepa"
)

// Statuses of an order.
const (
	StatusPlaced    = "placed"
	StatusConfirmed = "confirmed"
	StatusCancelled = "cancelled"
)

// Limits of an order.
const (
	MaxLines    = 50
	MaxQuantity = 99
)

// Order is the write-side state of an order.
type Order struct {
	CustomerID    string `json:"customer_id"`
	PaymentMethod string `json:"payment_method"`
	Lines         []Line `json:"lines"`
	TotalCents    int64  `json:"total_cents"`
	Status        string `json:"status"`
}

// Line is a priced line of an order.
type Line struct {
	ProductID      string `json:"product_id"`
	Quantity       int64  `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
}

// Item is what a customer asks for: units of a product.
type Item struct {
	ProductID string
	Quantity  int64
}

// PlaceOrder orders items; without items it checks out the customer's
// cart.
type PlaceOrder struct {
	OrderID       string
	CustomerID    string
	PaymentMethod string
	Items         []Item
}

// CommandName names the command on the bus.
func (PlaceOrder) CommandName() string { return "orders.PlaceOrder" }

// Validate checks the fields on their own (no items is valid: the cart).
func (c PlaceOrder) Validate() error {
	if uuid.Validate(c.CustomerID) != nil {
		return command.Invalid("customer_id", "must be a UUID")
	}
	if c.PaymentMethod != Card && c.PaymentMethod != Sepa {
		return command.Invalid("payment_method", `must be "card" or "sepa"`)
	}
	return validItems(c.Items)
}

func validItems(items []Item) error {
	if len(items) > MaxLines {
		return command.Invalid("items", "must hold at most 50 lines")
	}
	seen := map[string]bool{}
	for i, it := range items {
		switch {
		case uuid.Validate(it.ProductID) != nil:
			return command.Invalid(fmt.Sprintf("items[%d].product_id", i), "must be a UUID")
		case seen[it.ProductID]:
			return command.Invalid(fmt.Sprintf("items[%d].product_id", i), "appears twice; put the units in one line")
		case it.Quantity < 1 || it.Quantity > MaxQuantity:
			return command.Invalid(fmt.Sprintf("items[%d].quantity", i), "must be between 1 and 99")
		}
		seen[it.ProductID] = true
	}
	return nil
}

// Decide is the pure rule of placing an order: items (the command's or
// the cart's) priced at the catalogue's current prices.
func Decide(o Order, version int64, cmd PlaceOrder, prices map[string]int64) ([]schemas.Event, error) {
	if version > 0 {
		return nil, command.ErrConflict
	}
	if err := cmd.Validate(); err != nil {
		return nil, err
	}
	if len(cmd.Items) == 0 {
		return nil, command.Invalid("items", "must not be empty")
	}
	ev := schemas.OrderPlaced{OrderID: cmd.OrderID, CustomerID: cmd.CustomerID, PaymentMethod: cmd.PaymentMethod}
	for _, it := range cmd.Items {
		price, ok := prices[it.ProductID]
		if !ok {
			return nil, fmt.Errorf("product %s: %w", it.ProductID, command.ErrNotFound)
		}
		ev.Items = append(ev.Items, schemas.OrderLine{ProductID: it.ProductID, Quantity: int32(it.Quantity), UnitPriceCents: price})
		ev.TotalCents += price * it.Quantity
	}
	return []schemas.Event{ev}, nil
}

// Evolve folds events into the state.
func Evolve(o Order, events ...schemas.Event) Order {
	for _, e := range events {
		switch e := e.(type) {
		case schemas.OrderPlaced:
			o = Order{CustomerID: e.CustomerID, PaymentMethod: e.PaymentMethod, TotalCents: e.TotalCents, Status: StatusPlaced}
			for _, l := range e.Items {
				o.Lines = append(o.Lines, Line{ProductID: l.ProductID, Quantity: int64(l.Quantity), UnitPriceCents: l.UnitPriceCents})
			}
		case schemas.OrderConfirmed:
			o.Status = StatusConfirmed
		case schemas.OrderCancelled:
			o.Status = StatusCancelled
		}
	}
	return o
}

// Reasons an order is cancelled.
const (
	ReasonOutOfStock     = "out_of_stock"
	ReasonPaymentFailed  = "payment_failed"
	ReasonPaymentTimeout = "payment_timeout" // no outcome before the saga's deadline
)

// Transition moves a placed order to a terminal state: Confirm or Cancel.
type Transition interface{ transition() }

// Confirm confirms a paid order.
type Confirm struct{}

// Cancel cancels an order for Reason.
type Cancel struct{ Reason string }

func (Confirm) transition() {}
func (Cancel) transition()  {}

// DecideTransition is the pure rule of an order's end: only a placed order
// moves; the same transition again changes nothing; the other one is a
// conflict (a confirmed order is never cancelled, nor the reverse).
func DecideTransition(o Order, orderID string, t Transition) ([]schemas.Event, error) {
	switch t := t.(type) {
	case Confirm:
		switch o.Status {
		case StatusPlaced:
			return []schemas.Event{schemas.OrderConfirmed{OrderID: orderID}}, nil
		case StatusConfirmed:
			return nil, nil
		}
	case Cancel:
		if t.Reason != ReasonOutOfStock && t.Reason != ReasonPaymentFailed && t.Reason != ReasonPaymentTimeout {
			return nil, command.Invalid("reason", "unknown cancel reason "+t.Reason)
		}
		switch o.Status {
		case StatusPlaced:
			return []schemas.Event{schemas.OrderCancelled{OrderID: orderID, Reason: t.Reason}}, nil
		case StatusCancelled:
			return nil, nil
		}
	}
	if o.Status == "" {
		return nil, fmt.Errorf("order %s: %w", orderID, command.ErrNotFound)
	}
	return nil, fmt.Errorf("order %s is %s: %w", orderID, o.Status, command.ErrConflict)
}
