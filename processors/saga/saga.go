// Package saga is the order saga, a process manager: it carries a placed
// order to confirmed, or to cancelled with a reason, with compensation. Its
// own state per order lives in PostgreSQL (schema "saga"); its rule is the
// pure Decide (decide.go):
//
//	OrderPlaced      → reserve every line and request the payment; a deadline is set
//	                   (card: Timeouts.Card, SEPA: Timeouts.Sepa); a short product
//	                   cancels: out_of_stock
//	PaymentSucceeded → confirm the order; after a cancel, refund the charge
//	PaymentFailed    → cancel: payment_failed, release the units
//	deadline         → cancel: payment_timeout, release the units, cancel the payment
//
// A step (Step) runs in one transaction of the saga's own: it locks the
// order's saga row (SELECT … FOR UPDATE), decides, runs the commands, each
// in its own context's transaction and idempotent, then saves the state and
// its pending deadline and commits. Two steps of one order never overlap,
// whatever instance runs them, and a step that crashes before its commit
// runs again whole (a redelivered event, a deadline still due): its commands
// change nothing the second time. The Scheduler fires due deadlines as
// steps of the same kind, so a deadline survives restarts and fires once.
package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/pgdb"
	"shopstream/processors/consumer"
	"shopstream/producers/inventory"
	"shopstream/producers/orders"
	"shopstream/producers/payments"
	"shopstream/schemas"
)

// Group is the saga's consumer group.
const Group = "shop.processor.saga.v1"

// Topics are what it consumes.
var Topics = []string{schemas.TopicOrders, schemas.TopicPayments}

// Migrations creates the saga's schema: its state per order and its
// deadlines (pending: fired_at NULL; fired: the time it fired).
func Migrations() []pgdb.Migration {
	return []pgdb.Migration{{Context: "saga", Version: 1, SQL: `CREATE SCHEMA IF NOT EXISTS saga;
		CREATE TABLE saga.orders (
			id         text PRIMARY KEY,
			version    bigint NOT NULL CHECK (version > 0),
			state      jsonb NOT NULL,
			updated_at timestamptz NOT NULL DEFAULT now());
		CREATE TABLE saga.deadlines (
			order_id text NOT NULL REFERENCES saga.orders (id),
			kind     text NOT NULL,
			due_at   timestamptz NOT NULL,
			fired_at timestamptz,
			PRIMARY KEY (order_id, kind));
		CREATE INDEX deadlines_due ON saga.deadlines (due_at) WHERE fired_at IS NULL`}}
}

// Saga runs the order saga's steps.
type Saga struct {
	// own holds the saga's transactions, on its own tables only; the
	// contexts run its commands in transactions of their own, on their
	// pools, so that a step holding its connection never waits for
	// another from the same pool.
	own       *pgxpool.Pool
	orders    *orders.Service
	inventory *inventory.Service
	payments  *payments.Service
	refunders map[string]Refunder
	timeouts  Timeouts
	now       func() time.Time
	log       *slog.Logger
	// exec runs a command: s.run, but for tests.
	exec func(context.Context, command.Meta, Command) (Input, error)
	// order reads an order in the orders context: s.orders.Order, but for tests.
	order func(context.Context, string) (orders.Order, bool, error)
}

// Refunder gives a provider's charge back (pspclient.Client): asking
// again for a charge refunded changes nothing.
type Refunder interface {
	Refund(ctx context.Context, chargeID string) error
}

// Deps are what the saga runs on and calls.
type Deps struct {
	// Own holds the saga's state (saga.orders, saga.deadlines): a pool of
	// its own, apart from the contexts' (see Saga.own).
	Own       *pgxpool.Pool
	Orders    *orders.Service
	Inventory *inventory.Service
	Payments  *payments.Service
	// Refunders give late charges back through the provider of their
	// method (orders.Card, orders.Sepa).
	Refunders map[string]Refunder
	Timeouts  Timeouts
	Logger    *slog.Logger
}

// New returns the saga.
func New(d Deps) *Saga {
	t := d.Timeouts
	if t.Card <= 0 {
		t.Card = DefaultPaymentTimeout
	}
	if t.Sepa <= 0 {
		t.Sepa = DefaultSepaTimeout
	}
	s := &Saga{own: d.Own, orders: d.Orders, inventory: d.Inventory, payments: d.Payments, refunders: d.Refunders, timeouts: t,
		now: time.Now, log: d.Logger.With("component", "saga")}
	s.exec = s.run
	if d.Orders != nil {
		s.order = d.Orders.Order
	}
	return s
}

// Config is the saga's consumer. A step a context refuses (invalid, an
// order or product not found, a conflict) is permanent: no retry can fix
// it, so the record is dead-lettered and the partition keeps going.
func (s *Saga) Config(serde *eventlog.Serde) consumer.Config {
	return consumer.Config{Group: Group, Topics: Topics,
		Handler: s.Handle, Serde: serde, Logger: s.log,
		Permanent: []error{command.ErrInvalid, command.ErrNotFound, command.ErrConflict}}
}

// Handle runs the step an event calls for.
func (s *Saga) Handle(ctx context.Context, env eventlog.Envelope) error {
	meta := command.CausedBy(ctx, env.Meta)
	var err error
	switch e := env.Event.(type) {
	case schemas.OrderPlaced:
		_, err = s.Step(ctx, meta, e.OrderID, Placed{Order: e, At: s.now()})
	case schemas.PaymentSucceeded:
		_, err = s.Step(ctx, meta, e.OrderID, Paid{Method: e.Method, Reference: e.ProviderReference})
	case schemas.PaymentFailed:
		_, err = s.Step(ctx, meta, e.OrderID, Declined{Reason: e.Reason})
	}
	return err
}

// Step runs one step of order orderID's saga in the saga's own
// transaction and returns the state after it.
func (s *Saga) Step(ctx context.Context, meta command.Meta, orderID string, in Input) (State, error) {
	var out State
	err := pgx.BeginFunc(ctx, s.own, func(tx pgx.Tx) error {
		state, version, err := load(ctx, tx, orderID)
		if err != nil {
			return err
		}
		if version == 0 {
			if state, err = s.seed(ctx, orderID, in); err != nil {
				return err
			}
		}
		out, err = s.advance(ctx, tx, meta, orderID, state, version, in)
		return err
	})
	return out, err
}

// seed is the state of an order the saga has no row of, for a payment's
// outcome: the order's own, from the orders context. That is an order
// placed before the saga kept state (an upgrade), or one whose first step
// has not committed yet (it requests the payment before it saves): the
// outcome is decided on the order as it stands, and the first step, when
// it saves, finds the row and runs again on it.
func (s *Saga) seed(ctx context.Context, orderID string, in Input) (State, error) {
	switch in.(type) {
	case Paid, Declined:
	default:
		return State{}, nil
	}
	if s.order == nil {
		return State{}, nil
	}
	o, found, err := s.order(ctx, orderID)
	if err != nil || !found {
		return State{}, err
	}
	st := State{CustomerID: o.CustomerID, Method: o.PaymentMethod, AmountCents: o.TotalCents}
	for _, l := range o.Lines {
		st.Lines = append(st.Lines, Line{ProductID: l.ProductID, Quantity: l.Quantity})
	}
	switch o.Status {
	case orders.StatusPlaced:
		st.Status = StatusPaying
	case orders.StatusConfirmed:
		st.Status = StatusConfirmed
	case orders.StatusCancelled:
		st.Status = StatusCancelled
	}
	return st, nil
}

// advance decides on in, runs the commands (feeding their outcomes back)
// and saves the state within tx, which holds the order's saga row.
func (s *Saga) advance(ctx context.Context, tx pgx.Tx, meta command.Meta, orderID string, state State, version int64, in Input) (State, error) {
	next := state
	for in != nil {
		var cmds []Command
		var err error
		if next, cmds, err = Decide(next, orderID, in, s.timeouts); err != nil {
			return state, err
		}
		in = nil
		for _, c := range cmds {
			outcome, err := s.exec(ctx, meta, c)
			if err != nil {
				return state, fmt.Errorf("saga of order %s: %T: %w", orderID, c, err)
			}
			if outcome != nil {
				in = outcome // decided once the commands of this round are done
			}
		}
	}
	return next, save(ctx, tx, orderID, version, state, next)
}

// run runs one command in its context; a command's outcome that the saga
// must decide on is returned as an Input.
func (s *Saga) run(ctx context.Context, meta command.Meta, c Command) (Input, error) {
	switch c := c.(type) {
	case Reserve:
		lines := make([]inventory.Line, len(c.Lines))
		for i, l := range c.Lines {
			lines[i] = inventory.Line{ProductID: l.ProductID, Quantity: l.Quantity}
		}
		// Each context in its own transaction: the units, then the
		// payment. A step cut between the two runs again on redelivery:
		// the reservation answers as before, and the request is made once.
		err := s.inventory.Reserve(ctx, meta, c.OrderID, lines)
		if short := (*command.Shortage)(nil); errors.As(err, &short) {
			return Short{}, nil // Decide cancels the order: out_of_stock
		}
		if err != nil {
			return nil, err
		}
		err = s.payments.Request(ctx, meta, payments.Request{
			OrderID: c.OrderID, CustomerID: c.CustomerID, Method: c.Method, AmountCents: c.AmountCents, ExpiresAt: c.Deadline})
		if errors.Is(err, command.ErrInvalid) {
			// A request the payments context refuses for good: the step
			// is dead-lettered, and holds no units (as when both ran in
			// one transaction, which rolled the reservation back).
			ids := make([]string, len(c.Lines))
			for i, l := range c.Lines {
				ids[i] = l.ProductID
			}
			if rerr := s.inventory.Release(ctx, meta, c.OrderID, orders.ReasonPaymentFailed, ids); rerr != nil {
				return nil, rerr // transient: the step runs again
			}
		}
		return nil, err
	case ConfirmOrder:
		return nil, s.transition(ctx, meta, c.OrderID, orders.Confirm{})
	case CancelOrder:
		return nil, s.transition(ctx, meta, c.OrderID, orders.Cancel{Reason: c.Reason})
	case ReleaseUnits:
		return nil, s.inventory.Release(ctx, meta, c.OrderID, c.Reason, c.ProductIDs)
	case CancelPayment:
		return nil, s.payments.Cancel(ctx, meta, payments.Cancel{OrderID: c.OrderID})
	case RefundPayment:
		r := s.refunders[c.Method]
		if r == nil {
			return nil, fmt.Errorf("refund %s of order %s: no provider for method %q", c.Reference, c.OrderID, c.Method)
		}
		if err := r.Refund(ctx, c.Reference); err != nil {
			return nil, err
		}
		s.log.Warn("charge after the cancel refunded", "order_id", c.OrderID, "reference", c.Reference)
		return nil, nil
	}
	return nil, fmt.Errorf("saga: no way to run %T", c)
}

func (s *Saga) transition(ctx context.Context, meta command.Meta, orderID string, t orders.Transition) error {
	return s.orders.Transition(ctx, meta, orderID, t)
}

// State returns the saga's state of an order and its version (0: unseen).
func (s *Saga) State(ctx context.Context, orderID string) (State, int64, error) {
	var st State
	var version int64
	err := pgx.BeginFunc(ctx, s.own, func(tx pgx.Tx) error {
		var err error
		st, version, err = load(ctx, tx, orderID)
		return err
	})
	return st, version, err
}

// load reads and locks an order's saga row; an unseen order is the zero
// State at version 0 (nothing to lock: a concurrent first step fails on
// the primary key at save).
func load(ctx context.Context, tx pgx.Tx, orderID string) (State, int64, error) {
	var st State
	var version int64
	var raw []byte
	err := tx.QueryRow(ctx, `SELECT version, state FROM saga.orders WHERE id = $1 FOR UPDATE`, orderID).Scan(&version, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, 0, nil
	}
	if err != nil {
		return st, 0, fmt.Errorf("load saga of order %s: %w", orderID, err)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, 0, fmt.Errorf("decode saga of order %s: %w", orderID, err)
	}
	return st, version, nil
}

// save writes the state after a step and makes the pending deadlines
// those of the state: the one it holds is recorded (once: recording it
// again keeps the first due time), any other pending one is dropped.
func save(ctx context.Context, tx pgx.Tx, orderID string, version int64, old, next State) error {
	if version > 0 && equal(old, next) {
		return nil
	}
	raw, err := json.Marshal(next)
	if err != nil {
		return err
	}
	if version == 0 {
		_, err = tx.Exec(ctx, `INSERT INTO saga.orders (id, version, state) VALUES ($1, 1, $2)`, orderID, raw)
	} else {
		_, err = tx.Exec(ctx, `UPDATE saga.orders SET version = version + 1, state = $2, updated_at = now() WHERE id = $1`, orderID, raw)
	}
	if err != nil {
		return fmt.Errorf("save saga of order %s: %w", orderID, err)
	}
	kind := ""
	if next.Deadline != nil {
		kind = next.Deadline.Kind
		if _, err := tx.Exec(ctx, `INSERT INTO saga.deadlines (order_id, kind, due_at) VALUES ($1, $2, $3)
			ON CONFLICT (order_id, kind) DO NOTHING`, orderID, kind, next.Deadline.At); err != nil {
			return fmt.Errorf("record deadline of order %s: %w", orderID, err)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM saga.deadlines WHERE order_id = $1 AND fired_at IS NULL AND kind <> $2`, orderID, kind); err != nil {
		return fmt.Errorf("drop deadlines of order %s: %w", orderID, err)
	}
	return nil
}

func equal(a, b State) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
