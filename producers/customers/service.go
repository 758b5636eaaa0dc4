package customers

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/aggregate"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/password"
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
		// A customer's password hash: beside the account, written in the
		// sign-up's transaction, and never in an event.
		{Context: "customers", Version: 3, SQL: `CREATE TABLE customers.credentials (
			customer_id   text PRIMARY KEY REFERENCES customers.customers (id),
			password_hash text NOT NULL)`},
	}
}

// Service handles customer commands.
type Service struct {
	pool  *pgxpool.Pool
	store *aggregate.Store[Customer]
	// Hashing is the cost of the password hashes it makes.
	Hashing password.Params
}

// NewService returns the customers service.
func NewService(pool *pgxpool.Pool, serde *eventlog.Serde) *Service {
	return &Service{pool: pool, store: aggregate.NewStore[Customer](pool, serde, "customers.customers", Source), Hashing: password.Default}
}

// Register puts the customer handlers on the bus.
func (s *Service) Register(b *command.Bus) { command.Register(b, s.signUp) }

// signUp creates the account and its credentials in one transaction;
// command.ErrConflict when the email is taken.
func (s *Service) signUp(ctx context.Context, meta command.Meta, cmd SignUp) (command.Result, error) {
	if _, err := Decide(Customer{}, 0, cmd); err != nil {
		return command.Result{}, err // refused before paying for a hash
	}
	hash, err := password.Hash(string(cmd.Password), s.Hashing)
	if err != nil {
		return command.Result{}, err
	}
	return aggregate.Transact(ctx, s.pool, meta, func(tx pgx.Tx) (command.Result, error) {
		if _, _, err := s.store.Apply(ctx, tx, cmd.CustomerID, meta, aggregate.Rule(Decide, Evolve)(cmd)); err != nil {
			return command.Result{}, err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO customers.credentials (customer_id, password_hash) VALUES ($1, $2)`, cmd.CustomerID, hash); err != nil {
			return command.Result{}, err
		}
		return command.Created("/customers/"+cmd.CustomerID, cmd.CustomerID), nil
	})
}

// dummyHash is checked against when no account has the email, so that a
// log-in costs the same whether or not the email is known.
var dummyHash, _ = password.Hash("no account has this password", password.Default)

// Authenticate returns the id of the customer whose email and password
// these are; ok is false for an unknown email or a wrong password (the
// caller cannot tell which, nor by the time it takes).
func (s *Service) Authenticate(ctx context.Context, email string, pw password.Plain) (customerID string, ok bool, err error) {
	hash := dummyHash
	err = s.pool.QueryRow(ctx, `SELECT c.id, cr.password_hash FROM customers.customers c
		JOIN customers.credentials cr ON cr.customer_id = c.id WHERE c.email = $1`,
		strings.ToLower(strings.TrimSpace(email))).Scan(&customerID, &hash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", false, err
	}
	match, cerr := password.Check(hash, string(pw))
	if cerr != nil {
		return "", false, cerr
	}
	return customerID, match && customerID != "", nil
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
