package catalog

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/aggregate"
	"shopstream/internal/eventlog"
	"shopstream/internal/pgdb"
	"shopstream/producers/command"
	"shopstream/schemas"
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
	return &Service{products: aggregate.NewStore[Product](pool, serde, "catalog.products", schemas.TopicProducts, Source)}
}

// Handle decides cmd against the product's current state and saves the
// outcome with its events.
func (s *Service) Handle(ctx context.Context, meta command.Meta, cmd Command) error {
	_, err := s.products.Update(ctx, cmd.productID(), meta, aggregate.Decision(
		func(p Product, version int64) ([]schemas.Event, error) { return Decide(p, version, cmd) }, Evolve))
	return err
}

// Exists tells whether a product was registered.
func (s *Service) Exists(ctx context.Context, productID string) (bool, error) {
	_, _, found, err := s.products.Load(ctx, productID)
	return found, err
}
