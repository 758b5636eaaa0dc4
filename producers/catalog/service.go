package catalog

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/aggregate"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/pgdb"
)

// Source is the CloudEvents source of the catalogue's events.
const Source = "shopstream/catalog"

// Migrations creates the catalog schema.
func Migrations() []pgdb.Migration {
	return []pgdb.Migration{aggregate.Migration("catalog", "products")}
}

// Service handles the catalogue's commands.
type Service struct {
	products *aggregate.Store[Product]
}

// NewService returns the catalogue service.
func NewService(pool *pgxpool.Pool, serde *eventlog.Serde) *Service {
	return &Service{products: aggregate.NewStore[Product](pool, serde, "catalog.products", Source)}
}

// Register puts the catalogue's command handlers on the bus.
func (s *Service) Register(b *command.Bus) {
	command.Register(b, func(ctx context.Context, meta command.Meta, c RegisterProduct) (command.Result, error) {
		// The gateway makes the id of a product it registers: no product
		// has it yet (aggregate.Store.Create checks it all the same).
		return s.products.Create(ctx, c.ProductID, meta, decide(c), func(Product, int64) command.Result {
			return command.Created("/products/"+c.ProductID, c.ProductID)
		})
	})
	command.Register(b, func(ctx context.Context, meta command.Meta, c RestockProduct) (command.Result, error) {
		return s.handle(ctx, meta, c, command.OK(map[string]string{"id": c.ProductID}))
	})
}

// handle decides cmd against the product's current state and saves the
// outcome with its events, answering res.
func (s *Service) handle(ctx context.Context, meta command.Meta, cmd Command, res command.Result) (command.Result, error) {
	return s.products.Update(ctx, cmd.productID(), meta, decide(cmd), func(Product, int64) command.Result { return res })
}

var decide = aggregate.Rule(Decide, Evolve)

// Product returns a product's write-side state; found is false when it was
// never registered.
func (s *Service) Product(ctx context.Context, productID string) (p Product, found bool, err error) {
	p, _, found, err = s.products.Load(ctx, productID)
	return p, found, err
}

// Exists tells whether a product was registered.
func (s *Service) Exists(ctx context.Context, productID string) (bool, error) {
	_, _, found, err := s.products.Load(ctx, productID)
	return found, err
}
