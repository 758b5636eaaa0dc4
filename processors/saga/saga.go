// Package saga is the order saga: the processor that carries a placed
// order to confirmed, or to cancelled with a reason, with compensation.
//
//	OrderPlaced      → reserve every line (inventory) and request the payment, in one transaction;
//	                   a short product instead records the refusal and cancels: out_of_stock
//	PaymentSucceeded → confirm the order
//	PaymentFailed    → release the units and cancel: payment_failed, in one transaction
//
// Each step is one PostgreSQL transaction over the aggregates it changes,
// and each is idempotent (an order already past a step, a reservation
// already held, a payment already requested change nothing), so the
// at-least-once consumer can redeliver any event, before or after a crash.
package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/aggregate"
	"shopstream/internal/eventlog"
	"shopstream/processors/consumer"
	"shopstream/producers/command"
	"shopstream/producers/inventory"
	"shopstream/producers/orders"
	"shopstream/producers/payments"
	"shopstream/schemas"
)

// Group is the saga's consumer group.
const Group = "shop.processor.saga.v1"

// Saga runs the order saga's steps.
type Saga struct {
	pool      *pgxpool.Pool
	orders    *orders.Service
	inventory *inventory.Service
	payments  *payments.Service
	log       *slog.Logger
}

// New returns the saga.
func New(pool *pgxpool.Pool, o *orders.Service, inv *inventory.Service, pay *payments.Service, log *slog.Logger) *Saga {
	return &Saga{pool: pool, orders: o, inventory: inv, payments: pay, log: log.With("component", "saga")}
}

// Config is the saga's consumer.
func (s *Saga) Config(serde *eventlog.Serde) consumer.Config {
	return consumer.Config{Group: Group, Topics: []string{schemas.TopicOrders, schemas.TopicPayments},
		Handler: s.Handle, Serde: serde, Logger: s.log}
}

// Handle runs the step an event calls for.
func (s *Saga) Handle(ctx context.Context, env eventlog.Envelope) error {
	meta := command.CausedBy(ctx, env.Meta)
	var err error
	switch e := env.Event.(type) {
	case schemas.OrderPlaced:
		err = s.reserve(ctx, meta, e)
	case schemas.PaymentSucceeded:
		err = s.end(ctx, meta, e.OrderID, orders.Confirm{}, false)
	case schemas.PaymentFailed:
		err = s.end(ctx, meta, e.OrderID, orders.Cancel{Reason: orders.ReasonPaymentFailed}, true)
	}
	if errors.Is(err, command.ErrInvalid) || errors.Is(err, command.ErrNotFound) || errors.Is(err, command.ErrConflict) {
		// No retry can fix it: dead-letter it, and keep the partition going.
		return consumer.Permanent(err)
	}
	return err
}

func (s *Saga) reserve(ctx context.Context, meta command.Meta, e schemas.OrderPlaced) error {
	o, found, err := s.orders.Order(ctx, e.OrderID)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("order %s: %w", e.OrderID, command.ErrNotFound)
	}
	if o.Status != orders.StatusPlaced {
		return nil // this step is behind it
	}
	lines := make([]inventory.Line, len(e.Items))
	for i, it := range e.Items {
		lines[i] = inventory.Line{ProductID: it.ProductID, Quantity: int64(it.Quantity)}
	}
	err = s.inventory.Reserve(ctx, meta, e.OrderID, lines, inventory.Then{
		Held: func(tx pgx.Tx) error {
			return s.payments.RequestIn(ctx, tx, meta, payments.Request{
				OrderID: e.OrderID, CustomerID: e.CustomerID, Method: e.PaymentMethod, AmountCents: e.TotalCents})
		},
		Short: func(tx pgx.Tx) error {
			return s.orders.TransitionIn(ctx, tx, meta, e.OrderID, orders.Cancel{Reason: orders.ReasonOutOfStock})
		},
	})
	if short := (*command.Shortage)(nil); errors.As(err, &short) {
		return nil // cancelled out_of_stock: the step is done
	}
	return err
}

// end confirms or cancels an order, releasing its units first when asked.
func (s *Saga) end(ctx context.Context, meta command.Meta, orderID string, t orders.Transition, release bool) error {
	o, found, err := s.orders.Order(ctx, orderID)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("order %s: %w", orderID, command.ErrNotFound)
	}
	_, err = aggregate.Transact(ctx, s.pool, meta, func(tx pgx.Tx) (command.Result, error) {
		if release {
			ids := make([]string, len(o.Lines))
			for i, l := range o.Lines {
				ids[i] = l.ProductID
			}
			if err := s.inventory.ReleaseIn(ctx, tx, meta, orderID, orders.ReasonPaymentFailed, ids); err != nil {
				return command.Result{}, err
			}
		}
		return command.Result{}, s.orders.TransitionIn(ctx, tx, meta, orderID, t)
	})
	return err
}
