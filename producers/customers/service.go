package customers

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/aggregate"
	"shopstream/internal/eventlog"
	"shopstream/internal/pgdb"
	"shopstream/producers/command"
	"shopstream/schemas"
)

// Source is the CloudEvents source of customer events.
const Source = "shopstream/customers"

// Migrations creates the customers schema, with emails unique.
func Migrations() []pgdb.Migration {
	return []pgdb.Migration{
		aggregate.Migration("customers", "customers"),
		{Context: "customers", Version: 2, SQL: `ALTER TABLE customers.customers
			ADD COLUMN email text GENERATED ALWAYS AS (state->>'email') STORED,
			ADD CONSTRAINT customers_email_key UNIQUE (email)`},
	}
}

// Service handles customer commands.
type Service struct {
	store *aggregate.Store[Customer]
}

// NewService returns the customers service.
func NewService(pool *pgxpool.Pool, serde *eventlog.Serde) *Service {
	return &Service{store: aggregate.NewStore[Customer](pool, serde, "customers.customers", schemas.TopicCustomers, Source)}
}

// SignUp creates the account; command.ErrConflict when the email is taken.
func (s *Service) SignUp(ctx context.Context, meta command.Meta, cmd SignUp) error {
	_, err := s.store.Update(ctx, cmd.CustomerID, meta, aggregate.Decision(
		func(c Customer, version int64) ([]schemas.Event, error) { return Decide(c, version, cmd) }, Evolve))
	return err
}
