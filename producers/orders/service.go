package orders

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/aggregate"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/pgdb"
	"shopstream/producers/carts"
	"shopstream/schemas"
)

// Source is the CloudEvents source of order events.
const Source = "shopstream/orders"

// Migrations creates the orders schema.
func Migrations() []pgdb.Migration {
	return []pgdb.Migration{aggregate.Migration("orders", "orders")}
}

// Deps are the other contexts an order is checked against.
type Deps struct {
	// CustomerExists tells whether a customer signed up.
	CustomerExists func(ctx context.Context, id string) (bool, error)
	// Price is a product's current price; found is false for an unknown one.
	Price func(ctx context.Context, productID string) (cents int64, found bool, err error)
	// Available is the inventory's available units of the products it knows.
	Available func(ctx context.Context, productIDs []string) (map[string]int64, error)
	// Carts checks out a cart within the order's transaction.
	Carts *carts.Service
}

// Service handles order commands.
type Service struct {
	pool   *pgxpool.Pool
	orders *aggregate.Store[Order]
	d      Deps
}

// NewService returns the orders service.
func NewService(pool *pgxpool.Pool, serde *eventlog.Serde, d Deps) *Service {
	return &Service{pool: pool, orders: aggregate.NewStore[Order](pool, serde, "orders.orders", Source), d: d}
}

// Register puts the order handlers on the bus.
func (s *Service) Register(b *command.Bus) { command.Register(b, s.place) }

// Placed is the answer to a placed order.
type Placed struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// place accepts an order (202: the saga takes it from there) or refuses it:
// 404 for an unknown customer or product, 409 (*command.Shortage) when a
// product is sold out or short, 422 for an empty cart. From the cart, the
// cart is emptied in the order's transaction; a cart changed between its
// reading and its checkout fails the command with command.ErrVersion, for
// the bus to retry.
func (s *Service) place(ctx context.Context, meta command.Meta, cmd PlaceOrder) (command.Result, error) {
	found, err := s.d.CustomerExists(ctx, cmd.CustomerID)
	if err != nil {
		return command.Result{}, err
	}
	if !found {
		return command.Result{}, fmt.Errorf("customer %s: %w", cmd.CustomerID, command.ErrNotFound)
	}
	fromCart := len(cmd.Items) == 0
	if fromCart {
		held, err := s.d.Carts.Items(ctx, cmd.CustomerID)
		if err != nil {
			return command.Result{}, err
		}
		for _, it := range held {
			cmd.Items = append(cmd.Items, Item{ProductID: it.ProductID, Quantity: it.Quantity})
		}
	}
	// Checks read other contexts through the pool: before the transaction,
	// which must not wait for a second connection while it holds one.
	prices, err := s.check(ctx, cmd.Items)
	if err != nil {
		return command.Result{}, err
	}
	return aggregate.Transact(ctx, s.pool, meta, func(tx pgx.Tx) (command.Result, error) {
		if fromCart {
			held, err := s.d.Carts.CheckOut(ctx, tx, meta, cmd.CustomerID, cmd.OrderID)
			if err != nil {
				return command.Result{}, err
			}
			if !sameItems(held, cmd.Items) {
				// The cart changed since it was read: start again.
				return command.Result{}, fmt.Errorf("cart of %s changed during checkout: %w", cmd.CustomerID, command.ErrVersion)
			}
		}
		if _, _, err := s.orders.Apply(ctx, tx, cmd.OrderID, meta, aggregate.Decision(
			func(o Order, version int64) ([]schemas.Event, error) { return Decide(o, version, cmd, prices) }, Evolve)); err != nil {
			return command.Result{}, err
		}
		return command.Result{Status: http.StatusAccepted, Location: "/orders/" + cmd.OrderID,
			Body: Placed{ID: cmd.OrderID, Status: StatusPlaced}}, nil
	})
}

func sameItems(held []carts.Item, items []Item) bool {
	return slices.EqualFunc(held, items, func(h carts.Item, it Item) bool { return h.ProductID == it.ProductID && h.Quantity == it.Quantity })
}

// check prices the items and refuses a product the inventory knows to
// have fewer units than asked. A product the inventory has not heard of
// yet (its registration still on the way) is let through: the saga's
// reservation decides.
func (s *Service) check(ctx context.Context, items []Item) (map[string]int64, error) {
	prices := make(map[string]int64, len(items))
	ids := make([]string, 0, len(items))
	for _, it := range items {
		price, found, err := s.d.Price(ctx, it.ProductID)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("product %s: %w", it.ProductID, command.ErrNotFound)
		}
		prices[it.ProductID] = price
		ids = append(ids, it.ProductID)
	}
	available, err := s.d.Available(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if n, known := available[it.ProductID]; known && n < it.Quantity {
			return nil, &command.Shortage{ProductID: it.ProductID, Requested: it.Quantity, Available: n}
		}
	}
	return prices, nil
}

// Order returns an order's write-side state; found is false for an
// unknown one.
func (s *Service) Order(ctx context.Context, orderID string) (o Order, found bool, err error) {
	o, _, found, err = s.orders.Load(ctx, orderID)
	return o, found, err
}

// Transition confirms or cancels an order in its own transaction
// (idempotent).
func (s *Service) Transition(ctx context.Context, meta command.Meta, orderID string, t Transition) error {
	return s.orders.Exec(ctx, orderID, meta, aggregate.Decision(
		func(o Order, _ int64) ([]schemas.Event, error) { return DecideTransition(o, orderID, t) }, Evolve))
}
