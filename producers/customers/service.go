package customers

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/aggregate"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/pgdb"
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
	return &Service{store: aggregate.NewStore[Customer](pool, serde, "customers.customers", Source)}
}

// Register puts the customer handlers on the bus.
func (s *Service) Register(b *command.Bus) { command.Register(b, s.signUp) }

// signUp creates the account; command.ErrConflict when the email is taken.
func (s *Service) signUp(ctx context.Context, meta command.Meta, cmd SignUp) (command.Result, error) {
	return s.store.Update(ctx, cmd.CustomerID, meta, aggregate.Rule(Decide, Evolve)(cmd),
		func(Customer, int64) command.Result {
			return command.Created("/customers/"+cmd.CustomerID, cmd.CustomerID)
		})
}

// Exists tells whether a customer signed up.
func (s *Service) Exists(ctx context.Context, customerID string) (bool, error) {
	_, _, found, err := s.store.Load(ctx, customerID)
	return found, err
}

// Customer returns a customer's write-side state; found is false for an
// unknown id.
func (s *Service) Customer(ctx context.Context, customerID string) (c Customer, found bool, err error) {
	c, _, found, err = s.store.Load(ctx, customerID)
	return c, found, err
}
