package carts

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/aggregate"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/pgdb"
	"shopstream/schemas"
)

// Source is the CloudEvents source of cart events.
const Source = "shopstream/carts"

// Migrations creates the carts schema.
func Migrations() []pgdb.Migration {
	return []pgdb.Migration{aggregate.Migration("carts", "carts")}
}

// Exister tells whether an aggregate exists: the catalogue for products,
// the customers service for customers.
type Exister func(ctx context.Context, id string) (bool, error)

// Service handles cart commands.
type Service struct {
	store             *aggregate.Store[Cart]
	product, customer Exister
}

// NewService returns the carts service.
func NewService(pool *pgxpool.Pool, serde *eventlog.Serde, productExists, customerExists Exister) *Service {
	return &Service{store: aggregate.NewStore[Cart](pool, serde, "carts.carts", Source),
		product: productExists, customer: customerExists}
}

// View is a cart as the API shows it.
type View struct {
	CustomerID string `json:"customer_id"`
	Items      []Item `json:"items"`
}

func view(customerID string, c Cart) View {
	items := c.Items
	if items == nil {
		items = []Item{}
	}
	return View{CustomerID: customerID, Items: items}
}

// Register puts the cart handlers on the bus.
func (s *Service) Register(b *command.Bus) {
	command.Register(b, func(ctx context.Context, meta command.Meta, c AddItem) (command.Result, error) {
		if err := s.mustExist(ctx, c.CustomerID, c.ProductID); err != nil {
			return command.Result{}, err
		}
		return s.update(ctx, meta, c)
	})
	command.Register(b, func(ctx context.Context, meta command.Meta, c RemoveItem) (command.Result, error) {
		res, err := s.update(ctx, meta, c)
		if err != nil {
			err = fmt.Errorf("no product %s in the cart of %s: %w", c.ProductID, c.CustomerID, err)
		}
		return res, err
	})
}

func (s *Service) mustExist(ctx context.Context, customerID, productID string) error {
	for _, x := range []struct {
		what, id string
		exists   Exister
	}{{"customer", customerID, s.customer}, {"product", productID, s.product}} {
		found, err := x.exists(ctx, x.id)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%s %s: %w", x.what, x.id, command.ErrNotFound)
		}
	}
	return nil
}

func (s *Service) update(ctx context.Context, meta command.Meta, cmd Command) (command.Result, error) {
	return s.store.Update(ctx, cmd.customerID(), meta, decide(cmd),
		func(c Cart, _ int64) command.Result { return command.OK(view(cmd.customerID(), c)) })
}

func decide(cmd Command) aggregate.Decide[Cart] {
	return aggregate.Decision(func(c Cart, _ int64) ([]schemas.Event, error) { return Decide(c, cmd) }, Evolve)
}

// Items returns what a customer's cart holds; an empty cart is
// command.ErrInvalid.
func (s *Service) Items(ctx context.Context, customerID string) ([]Item, error) {
	c, _, _, err := s.store.Load(ctx, customerID)
	if err != nil {
		return nil, err
	}
	if len(c.Items) == 0 {
		return nil, errEmpty
	}
	return c.Items, nil
}

// CheckOut empties the customer's cart into order orderID, within the
// order's transaction tx, and returns what it held: exactly the state the
// emptying was decided on, so a cart changed concurrently fails the
// transaction (command.ErrVersion) rather than losing a line. An empty
// cart is command.ErrInvalid.
func (s *Service) CheckOut(ctx context.Context, tx pgx.Tx, meta command.Meta, customerID, orderID string) ([]Item, error) {
	var items []Item
	_, _, err := s.store.Apply(ctx, tx, customerID, meta, aggregate.Decision(func(c Cart, _ int64) ([]schemas.Event, error) {
		items = c.Items
		return Decide(c, CheckOut{CustomerID: customerID, OrderID: orderID})
	}, Evolve))
	return items, err
}
