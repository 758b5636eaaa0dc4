// Package payments is the write service of an order's payment, on
// shop.payments.v1 keyed by order id, through the PostgreSQL write model
// (schema "payments") and the outbox. A SEPA payment also puts a
// SepaTransferRequested on the one-partition shop.payments.sepa-requests.v1,
// so that exactly one consumer at a time calls the bank.
//
// Guarantees: one payment per order (requesting again changes nothing),
// settled once (the first outcome recorded wins; a later one changes
// nothing), so a redelivered request or outcome never charges or counts
// twice. The saga may cancel a payment still requested (Cancel: its
// deadline passed), recorded as PaymentFailed with ReasonTimeout; a charge
// the provider reports after that is still recorded as PaymentSucceeded,
// so that the saga hears of it and refunds it.
package payments

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/aggregate"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/pgdb"
	"shopstream/schemas"
)

// Source is the CloudEvents source of payment events.
const Source = "shopstream/payments"

// Statuses of a payment.
const (
	StatusRequested = "requested"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled" // by the saga, before any outcome
)

// ReasonTimeout is the reason of a payment cancelled by Cancel.
const ReasonTimeout = "payment_timeout"

// Payment is the write-side state of an order's payment.
type Payment struct {
	CustomerID  string `json:"customer_id"`
	Method      string `json:"method"`
	AmountCents int64  `json:"amount_cents"`
	Status      string `json:"status"`
}

// Request asks for an order's payment.
type Request struct {
	OrderID     string
	CustomerID  string
	Method      string // card or sepa
	AmountCents int64
	// ExpiresAt is when the order's saga stops waiting for the outcome
	// (its deadline), carried by PaymentRequested; zero: none.
	ExpiresAt time.Time
}

// Settle records the outcome of the payment provider.
type Settle struct {
	OrderID   string
	Succeeded bool
	Reference string // the provider's, when it succeeded
	Reason    string // why not, when it failed
}

// Cancel stops a payment that has no outcome yet (the saga's deadline
// passed): a charge reported later is recorded, for the saga to refund.
type Cancel struct{ OrderID string }

// Command is a payment command.
type Command interface{ orderID() string }

func (c Request) orderID() string { return c.OrderID }
func (c Settle) orderID() string  { return c.OrderID }
func (c Cancel) orderID() string  { return c.OrderID }

// Decide is the pure rule of payments.
func Decide(p Payment, version int64, cmd Command) ([]schemas.Event, error) {
	switch c := cmd.(type) {
	case Request:
		if version > 0 {
			return nil, nil // already requested
		}
		if c.AmountCents <= 0 {
			return nil, command.Invalid("amount_cents", "must be positive")
		}
		requested := schemas.PaymentRequested{OrderID: c.OrderID, Method: c.Method, AmountCents: c.AmountCents}
		if !c.ExpiresAt.IsZero() {
			at := c.ExpiresAt.UTC().Truncate(time.Millisecond)
			requested.ExpiresAt = &at
		}
		events := []schemas.Event{requested}
		switch c.Method {
		case "card":
		case "sepa":
			events = append(events, schemas.SepaTransferRequested{OrderID: c.OrderID, CustomerID: c.CustomerID, AmountCents: c.AmountCents})
		default:
			return nil, command.Invalid("method", `must be "card" or "sepa"`)
		}
		return events, nil
	case Settle:
		if version == 0 {
			return nil, fmt.Errorf("payment of order %s: %w", c.OrderID, command.ErrNotFound)
		}
		if p.Status == StatusCancelled && c.Succeeded {
			// Charged after the cancel: the money moved, say so.
			return []schemas.Event{schemas.PaymentSucceeded{OrderID: c.OrderID, Method: p.Method, AmountCents: p.AmountCents, ProviderReference: c.Reference}}, nil
		}
		if p.Status != StatusRequested {
			return nil, nil // settled already: the first outcome stands
		}
		if c.Succeeded {
			return []schemas.Event{schemas.PaymentSucceeded{OrderID: c.OrderID, Method: p.Method, AmountCents: p.AmountCents, ProviderReference: c.Reference}}, nil
		}
		return []schemas.Event{schemas.PaymentFailed{OrderID: c.OrderID, Method: p.Method, Reason: c.Reason}}, nil
	case Cancel:
		if version == 0 || p.Status != StatusRequested {
			return nil, nil // never requested, or it has an outcome (or a cancel) already
		}
		return []schemas.Event{schemas.PaymentFailed{OrderID: c.OrderID, Method: p.Method, Reason: ReasonTimeout}}, nil
	}
	return nil, command.Invalid("command", "unknown command")
}

// Evolve folds events into the state.
func Evolve(p Payment, events ...schemas.Event) Payment {
	for _, e := range events {
		switch e := e.(type) {
		case schemas.PaymentRequested:
			p = Payment{Method: e.Method, AmountCents: e.AmountCents, Status: StatusRequested}
		case schemas.SepaTransferRequested:
			p.CustomerID = e.CustomerID
		case schemas.PaymentSucceeded:
			p.Status = StatusSucceeded
		case schemas.PaymentFailed:
			p.Status = StatusFailed
			if e.Reason == ReasonTimeout {
				p.Status = StatusCancelled
			}
		}
	}
	return p
}

// Migrations creates the payments schema.
func Migrations() []pgdb.Migration {
	return []pgdb.Migration{aggregate.Migration("payments", "payments")}
}

// Service handles payment commands.
type Service struct {
	pool     *pgxpool.Pool
	payments *aggregate.Store[Payment]
}

// NewService returns the payments service.
func NewService(pool *pgxpool.Pool, serde *eventlog.Serde) *Service {
	return &Service{pool: pool, payments: aggregate.NewStore[Payment](pool, serde, "payments.payments", Source)}
}

var decide = aggregate.Rule(Decide, Evolve)

// RequestIn asks for an order's payment within tx.
func (s *Service) Request(ctx context.Context, meta command.Meta, cmd Request) error {
	return s.payments.Exec(ctx, cmd.OrderID, meta, decide(cmd))
}

// Settle records a provider's outcome in its own transaction.
func (s *Service) Settle(ctx context.Context, meta command.Meta, cmd Settle) error {
	return s.payments.Exec(ctx, cmd.OrderID, meta, decide(cmd))
}

// Cancel stops an order's payment in its own transaction (idempotent).
func (s *Service) Cancel(ctx context.Context, meta command.Meta, cmd Cancel) error {
	return s.payments.Exec(ctx, cmd.OrderID, meta, decide(cmd))
}

// Payment returns an order's payment state; found is false before it is
// requested.
func (s *Service) Payment(ctx context.Context, orderID string) (p Payment, found bool, err error) {
	p, _, found, err = s.payments.Load(ctx, orderID)
	return p, found, err
}
