package reviews

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/aggregate"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/pgdb"
	"shopstream/schemas"
)

// Source is the CloudEvents source of review events.
const Source = "shopstream/reviews"

// Migrations creates the reviews schema.
func Migrations() []pgdb.Migration {
	return []pgdb.Migration{aggregate.Migration("reviews", "product_reviews")}
}

// Products tells whether a product exists; the catalogue service is one.
type Products interface {
	Exists(ctx context.Context, productID string) (bool, error)
}

// Service handles review commands.
type Service struct {
	store    *aggregate.Store[ProductReviews]
	products Products
}

// NewService returns the reviews service.
func NewService(pool *pgxpool.Pool, serde *eventlog.Serde, products Products) *Service {
	return &Service{
		store:    aggregate.NewStore[ProductReviews](pool, serde, "reviews.product_reviews", Source),
		products: products,
	}
}

// Register puts the review handlers on the bus.
func (s *Service) Register(b *command.Bus) { command.Register(b, s.add) }

// add records a review of an existing product; ErrNotFound when the
// product does not exist.
func (s *Service) add(ctx context.Context, meta command.Meta, cmd AddReview) (command.Result, error) {
	found, err := s.products.Exists(ctx, cmd.ProductID)
	if err != nil {
		return command.Result{}, err
	}
	if !found {
		return command.Result{}, fmt.Errorf("product %s: %w", cmd.ProductID, command.ErrNotFound)
	}
	return s.store.Update(ctx, cmd.ProductID, meta, aggregate.Decision(
		func(st ProductReviews, _ int64) ([]schemas.Event, error) { return Decide(st, cmd) }, Evolve),
		func(ProductReviews, int64) command.Result { return command.Created("", cmd.ReviewID) })
}
