package saga

import (
	"errors"
	"fmt"
	"time"

	"shopstream/producers/orders"
	"shopstream/schemas"
)

// Statuses of an order's saga.
const (
	StatusPaying    = "paying" // units held, payment requested, a deadline pending
	StatusConfirmed = "confirmed"
	StatusCancelled = "cancelled"
)

// Kinds of deadline.
const (
	DeadlinePayment = "payment"       // a card payment's answer
	DeadlineSepa    = "sepa_transfer" // the bank's confirmation of a SEPA debit
)

// State is the saga's state of one order. The zero State is an order the
// saga has not seen.
type State struct {
	Status      string    `json:"status,omitempty"`
	CustomerID  string    `json:"customer_id,omitempty"`
	Method      string    `json:"method,omitempty"`
	AmountCents int64     `json:"amount_cents,omitempty"`
	Lines       []Line    `json:"lines,omitempty"`
	Reason      string    `json:"reason,omitempty"`   // why cancelled
	Deadline    *Deadline `json:"deadline,omitempty"` // the pending one, if any
	// Refunded is set once a charge that came after the cancel was
	// ordered back.
	Refunded bool `json:"refunded,omitempty"`
}

// Line is what an order holds of one product.
type Line struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

// Deadline is a point in time at which the saga acts if nothing else
// happened first.
type Deadline struct {
	Kind string    `json:"kind"`
	At   time.Time `json:"at"`
}

// Timeouts are how long the saga waits for a payment's outcome.
type Timeouts struct {
	Card time.Duration // a card payment
	Sepa time.Duration // a SEPA transfer
}

// Default timeouts.
const (
	DefaultPaymentTimeout = 10 * time.Minute
	DefaultSepaTimeout    = 72 * time.Hour
)

// Input is what moves the saga: an event of another context, the outcome
// of one of its commands, or a deadline.
type Input interface{ input() }

// Placed is an order placed, seen At.
type Placed struct {
	Order schemas.OrderPlaced
	At    time.Time
}

// Short is the reservation refused: a product had too few units. The
// inventory cancelled the order with it (out_of_stock).
type Short struct{}

// Paid is the payment succeeded: the provider charged Reference.
type Paid struct{ Method, Reference string }

// Declined is the payment failed.
type Declined struct{ Reason string }

// Fired is a deadline of Kind come.
type Fired struct{ Kind string }

func (Placed) input()   {}
func (Short) input()    {}
func (Paid) input()     {}
func (Declined) input() {}
func (Fired) input()    {}

// Command is what the saga asks of another context. Every one is
// idempotent there: the saga runs it again after a crash or a redelivery.
type Command interface{ command() }

// Reserve holds the order's units and requests its payment (or, short,
// records the refusal and cancels the order out_of_stock).
type Reserve struct {
	OrderID, CustomerID, Method string
	AmountCents                 int64
	Lines                       []Line
	// Deadline is when the saga stops waiting for the payment: the
	// payment request carries it, so that readers see it.
	Deadline time.Time
}

// ConfirmOrder confirms the order.
type ConfirmOrder struct{ OrderID string }

// CancelOrder cancels the order for Reason.
type CancelOrder struct{ OrderID, Reason string }

// ReleaseUnits gives back what the order holds of each product.
type ReleaseUnits struct {
	OrderID, Reason string
	ProductIDs      []string
}

// CancelPayment stops the payment: a charge that comes later is refunded.
type CancelPayment struct{ OrderID, Reason string }

// RefundPayment gives back a charge (the provider's Reference) that came
// after the order was cancelled.
type RefundPayment struct{ OrderID, Method, Reference string }

func (Reserve) command()       {}
func (ConfirmOrder) command()  {}
func (CancelOrder) command()   {}
func (ReleaseUnits) command()  {}
func (CancelPayment) command() {}
func (RefundPayment) command() {}

// ErrUnknownOrder is an input about an order the saga has not seen placed
// yet: its OrderPlaced step has not committed. Transient: retry.
var ErrUnknownOrder = errors.New("saga: order not placed yet")

// Decide is the saga's pure rule: given its state of order orderID and an
// input, the new state and the commands to run. The same input again
// gives the same commands (they are idempotent), so a step that crashed
// before its state was saved runs again whole; an input a later step made
// obsolete (a payment outcome after a timeout, a deadline after the
// outcome) changes nothing, except a charge after a cancel: refunded.
func Decide(s State, orderID string, in Input, t Timeouts) (State, []Command, error) {
	switch in := in.(type) {
	case Placed:
		switch s.Status {
		case "":
			e := in.Order
			s = State{Status: StatusPaying, CustomerID: e.CustomerID, Method: e.PaymentMethod, AmountCents: e.TotalCents}
			for _, l := range e.Items {
				s.Lines = append(s.Lines, Line{ProductID: l.ProductID, Quantity: int64(l.Quantity)})
			}
			kind, timeout := DeadlinePayment, t.Card
			if e.PaymentMethod == orders.Sepa {
				kind, timeout = DeadlineSepa, t.Sepa
			}
			s.Deadline = &Deadline{Kind: kind, At: in.At.Add(timeout).UTC()}
			fallthrough
		case StatusPaying:
			r := Reserve{OrderID: orderID, CustomerID: s.CustomerID, Method: s.Method, AmountCents: s.AmountCents, Lines: s.Lines}
			if s.Deadline != nil {
				r.Deadline = s.Deadline.At
			}
			return s, []Command{r}, nil
		}
		return s, nil, nil // past this step
	case Short:
		switch {
		case s.Status == StatusPaying:
			s = cancelled(s, orders.ReasonOutOfStock)
			fallthrough
		case s.Status == StatusCancelled && s.Reason == orders.ReasonOutOfStock:
			return s, []Command{CancelOrder{OrderID: orderID, Reason: orders.ReasonOutOfStock}}, nil
		}
		return s, nil, nil
	case Paid:
		switch {
		case s.Status == "":
			return s, nil, fmt.Errorf("payment of order %s succeeded: %w", orderID, ErrUnknownOrder)
		case s.Status == StatusPaying:
			s.Status, s.Deadline = StatusConfirmed, nil
			fallthrough
		case s.Status == StatusConfirmed:
			return s, []Command{ConfirmOrder{OrderID: orderID}}, nil
		}
		// Charged after the order was cancelled: give the money back.
		s.Refunded = true
		return s, []Command{RefundPayment{OrderID: orderID, Method: in.Method, Reference: in.Reference}}, nil
	case Declined:
		switch {
		case s.Status == "":
			return s, nil, fmt.Errorf("payment of order %s failed: %w", orderID, ErrUnknownOrder)
		case s.Status == StatusPaying:
			s = cancelled(s, orders.ReasonPaymentFailed)
			fallthrough
		case s.Status == StatusCancelled && s.Reason == orders.ReasonPaymentFailed:
			return s, compensate(s, orderID, false), nil
		}
		return s, nil, nil // the order ended otherwise first
	case Fired:
		if s.Status != StatusPaying || s.Deadline == nil || s.Deadline.Kind != in.Kind {
			return s, nil, nil // the outcome came first
		}
		s = cancelled(s, orders.ReasonPaymentTimeout)
		return s, compensate(s, orderID, true), nil
	}
	return s, nil, fmt.Errorf("saga: unknown input %T", in)
}

func cancelled(s State, reason string) State {
	s.Status, s.Reason, s.Deadline = StatusCancelled, reason, nil
	return s
}

// compensate cancels the order first (so that a concurrent confirmation
// cannot win after the units are back), then releases its units, then,
// when the payment may still be under way, cancels it.
func compensate(s State, orderID string, payment bool) []Command {
	ids := make([]string, len(s.Lines))
	for i, l := range s.Lines {
		ids[i] = l.ProductID
	}
	cmds := []Command{CancelOrder{OrderID: orderID, Reason: s.Reason}, ReleaseUnits{OrderID: orderID, Reason: s.Reason, ProductIDs: ids}}
	if payment {
		cmds = append(cmds, CancelPayment{OrderID: orderID, Reason: s.Reason})
	}
	return cmds
}
