package inventory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/aggregate"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/pgdb"
)

// Source is the CloudEvents source of stock events.
const Source = "shopstream/inventory"

// Migrations creates the inventory schema. The available units are a
// column generated from the state, so that the database refuses a
// negative stock whatever the code does.
func Migrations() []pgdb.Migration {
	return []pgdb.Migration{
		aggregate.Migration("inventory", "stock"),
		{Context: "inventory", Version: 2, SQL: `ALTER TABLE inventory.stock
			ADD COLUMN available bigint GENERATED ALWAYS AS ((state->>'available')::bigint) STORED
			CONSTRAINT stock_available_not_negative CHECK (available >= 0)`},
	}
}

// Service handles stock commands.
type Service struct {
	pool  *pgxpool.Pool
	stock *aggregate.Store[Stock]
}

// NewService returns the inventory service.
func NewService(pool *pgxpool.Pool, serde *eventlog.Serde) *Service {
	return &Service{pool: pool, stock: aggregate.NewStore[Stock](pool, serde, "inventory.stock", Source)}
}

var decide = aggregate.Rule(Decide, Evolve)

// Receive adds a catalogue event's units to a product's stock, once per
// catalogue aggregate version.
func (s *Service) Receive(ctx context.Context, meta command.Meta, cmd ReceiveStock) error {
	return s.stock.Exec(ctx, cmd.ProductID, meta, decide(cmd))
}

// Line is what an order asks of one product.
type Line struct {
	ProductID string
	Quantity  int64
}

// Reserve holds every line of an order, all or nothing, in one transaction
// of the inventory's own. When a product is short nothing is held: another
// transaction records a StockReservationRejected for each short product,
// and Reserve returns the first *command.Shortage. Reserving an order again
// changes nothing (and answers as the first time did). A lost version race
// is command.ErrVersion: the caller retries.
func (s *Service) Reserve(ctx context.Context, meta command.Meta, orderID string, lines []Line) error {
	var short []*command.Shortage
	_, err := aggregate.Transact(ctx, s.pool, meta, func(tx pgx.Tx) (command.Result, error) {
		var err error
		if short, err = s.reserveIn(ctx, tx, meta, orderID, lines); err != nil {
			return command.Result{}, err
		}
		if len(short) > 0 {
			return command.Result{}, short[0] // roll back what was held
		}
		return command.Result{}, nil
	})
	if len(short) == 0 {
		return err
	}
	if _, err := aggregate.Transact(ctx, s.pool, meta, func(tx pgx.Tx) (command.Result, error) {
		return command.Result{}, s.rejectIn(ctx, tx, meta, orderID, short)
	}); err != nil {
		return fmt.Errorf("record rejection of order %s: %w", orderID, err)
	}
	return short[0]
}

// reserveIn holds every line of an order within tx and returns the
// products that are short.
func (s *Service) reserveIn(ctx context.Context, tx pgx.Tx, meta command.Meta, orderID string, lines []Line) ([]*command.Shortage, error) {
	lines = slices.Clone(lines)
	// One order of locking for every transaction: no deadlock between two
	// orders of the same products.
	slices.SortFunc(lines, func(a, b Line) int { return strings.Compare(a.ProductID, b.ProductID) })
	var short []*command.Shortage
	for _, l := range lines {
		_, _, err := s.stock.Apply(ctx, tx, l.ProductID, meta, decide(Reserve{ProductID: l.ProductID, OrderID: orderID, Quantity: l.Quantity}))
		if sh := (*command.Shortage)(nil); errors.As(err, &sh) {
			short = append(short, sh)
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	return short, nil
}

// rejectIn records, within tx, that order orderID could not have the
// units reserveIn found short.
func (s *Service) rejectIn(ctx context.Context, tx pgx.Tx, meta command.Meta, orderID string, short []*command.Shortage) error {
	for _, sh := range short {
		if sh.Unknown {
			continue // no stream to record it on
		}
		if _, _, err := s.stock.Apply(ctx, tx, sh.ProductID, meta, decide(Reject{ProductID: sh.ProductID, OrderID: orderID, Quantity: sh.Requested})); err != nil {
			return err
		}
	}
	return nil
}

// Release gives back what order orderID holds of each product, in one
// transaction of the inventory's own; releasing again changes nothing.
func (s *Service) Release(ctx context.Context, meta command.Meta, orderID, reason string, productIDs []string) error {
	_, err := aggregate.Transact(ctx, s.pool, meta, func(tx pgx.Tx) (command.Result, error) {
		for _, id := range slices.Sorted(slices.Values(productIDs)) {
			if _, _, err := s.stock.Apply(ctx, tx, id, meta, decide(Release{ProductID: id, OrderID: orderID, Reason: reason})); err != nil {
				return command.Result{}, err
			}
		}
		return command.Result{}, nil
	})
	return err
}

// Available returns the units available of each product the inventory
// knows among productIDs; a product it has not heard of yet is absent.
func (s *Service) Available(ctx context.Context, productIDs []string) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, available FROM inventory.stock WHERE id = ANY($1)`, productIDs)
	if err != nil {
		return nil, fmt.Errorf("inventory: available: %w", err)
	}
	out := map[string]int64{}
	var id string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&id, &n}, func() error { out[id] = n; return nil })
	return out, err
}
