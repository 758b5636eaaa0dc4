package customers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/aggregate"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/password"
	"shopstream/internal/platform/pgdb"
	"shopstream/internal/platform/pii"
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
		// A customer's password hash: beside the account, written in the
		// sign-up's transaction, and never in an event.
		{Context: "customers", Version: 3, SQL: `CREATE TABLE customers.credentials (
			customer_id   text PRIMARY KEY REFERENCES customers.customers (id),
			password_hash text NOT NULL)`},
		// Each customer's key for the personal fields of its events
		// (package pii): made at sign-up, never in Kafka, destroyed (NULL)
		// at erasure.
		{Context: "customers", Version: 4, SQL: `CREATE TABLE customers.pii_keys (
			key_id       text PRIMARY KEY,
			customer_id  text NOT NULL UNIQUE,
			key          bytea,
			created_at   timestamptz NOT NULL DEFAULT now(),
			destroyed_at timestamptz)`},
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
func (s *Service) Register(b *command.Bus) {
	command.Register(b, s.signUp)
	command.Register(b, s.erase)
}

// signUp creates the account and its credentials in one transaction;
// command.ErrConflict when the email is taken.
func (s *Service) signUp(ctx context.Context, meta command.Meta, cmd SignUp) (command.Result, error) {
	if _, err := Decide(Customer{}, 0, cmd); err != nil {
		return command.Result{}, err // refused before paying for a hash
	}
	hash, err := password.Hash(ctx, string(cmd.Password), s.Hashing)
	if err != nil {
		return command.Result{}, hashError(err)
	}
	key, err := pii.NewKey()
	if err != nil {
		return command.Result{}, err
	}
	keyID := "k-" + cmd.CustomerID
	return aggregate.Transact(ctx, s.pool, meta, func(tx pgx.Tx) (command.Result, error) {
		// The state keeps the personal fields (the write model, erased at
		// erasure); the event carries them sealed under the new key.
		sealed := func(c Customer, version int64) (Customer, []schemas.Event, error) {
			events, err := Decide(c, version, cmd)
			if err != nil || len(events) == 0 {
				return c, events, err
			}
			e := events[0].(schemas.CustomerSignedUp)
			e.PIIKeyID = &keyID
			next := Evolve(c, e)
			if e.Email, err = pii.Seal(key, keyID, e.Email); err == nil {
				e.Name, err = pii.Seal(key, keyID, e.Name)
			}
			return next, []schemas.Event{e}, err
		}
		if _, _, err := s.store.Apply(ctx, tx, cmd.CustomerID, meta, sealed); err != nil {
			return command.Result{}, err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO customers.credentials (customer_id, password_hash) VALUES ($1, $2)`, cmd.CustomerID, hash); err != nil {
			return command.Result{}, err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO customers.pii_keys (key_id, customer_id, key) VALUES ($1, $2, $3)`, keyID, cmd.CustomerID, key); err != nil {
			return command.Result{}, err
		}
		return command.Created("/customers/"+cmd.CustomerID, cmd.CustomerID), nil
	})
}

// erase destroys the customer's key and personal data, closes its
// account (no log-in any more) and appends CustomerErased, in one
// transaction: 204, also for a customer already erased.
func (s *Service) erase(ctx context.Context, meta command.Meta, cmd Erase) (command.Result, error) {
	return aggregate.Transact(ctx, s.pool, meta, func(tx pgx.Tx) (command.Result, error) {
		if _, _, err := s.store.Apply(ctx, tx, cmd.CustomerID, meta, aggregate.Rule(DecideErase, Evolve)(cmd)); err != nil {
			return command.Result{}, err
		}
		if _, err := tx.Exec(ctx, `UPDATE customers.pii_keys SET key = NULL, destroyed_at = coalesce(destroyed_at, now()) WHERE customer_id = $1`, cmd.CustomerID); err != nil {
			return command.Result{}, err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM customers.credentials WHERE customer_id = $1`, cmd.CustomerID); err != nil {
			return command.Result{}, err
		}
		return command.Result{Status: http.StatusNoContent}, nil
	})
}

// Seal seals plain (an address the customer gave) under the customer's
// key, for an event of another context: it returns the key id and the
// sealed field. A customer from before keys existed gets plain back and
// no key id (as in v1 events); an erased one, pii.ErrErased.
func (s *Service) Seal(ctx context.Context, customerID, plain string) (keyID, sealed string, err error) {
	var key []byte
	err = s.pool.QueryRow(ctx, `SELECT key_id, key FROM customers.pii_keys WHERE customer_id = $1`, customerID).Scan(&keyID, &key)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", plain, nil
	case err != nil:
		return "", "", err
	case key == nil:
		return "", "", pii.ErrErased
	}
	sealed, err = pii.Seal(key, keyID, plain)
	return keyID, sealed, err
}

// Reveal opens a field sealed under key keyID (plain text when keyID is
// "": a v1 event's); pii.ErrErased once the key is destroyed.
func (s *Service) Reveal(ctx context.Context, keyID, sealed string) (string, error) {
	if keyID == "" {
		return sealed, nil
	}
	var key []byte
	if err := s.pool.QueryRow(ctx, `SELECT key FROM customers.pii_keys WHERE key_id = $1`, keyID).Scan(&key); errors.Is(err, pgx.ErrNoRows) || (err == nil && key == nil) {
		return "", pii.ErrErased
	} else if err != nil {
		return "", err
	}
	return pii.Open(key, keyID, sealed)
}

// dummyHash is checked against when no account has the email, so that a
// log-in costs the same whether or not the email is known.
var dummyHash, _ = password.Hash(context.Background(), "no account has this password", password.Default)

// hashError reports a hash refused for want of a slot as the overload it
// is (the gateway answers 429 with Retry-After).
func hashError(err error) error {
	if errors.Is(err, password.ErrBusy) {
		return fmt.Errorf("%w: %w", command.ErrOverloaded, err)
	}
	return err
}

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
	match, cerr := password.Check(ctx, hash, string(pw))
	if cerr != nil {
		return "", false, hashError(cerr)
	}
	return customerID, match && customerID != "", nil
}

// Exists tells whether a customer signed up and was not erased: an erased
// customer orders, fills a cart and is written to no more (its token may
// live on for minutes; its account does not).
func (s *Service) Exists(ctx context.Context, customerID string) (bool, error) {
	c, _, found, err := s.store.Load(ctx, customerID)
	return found && !c.Erased, err
}

// Customer returns a customer's write-side state; found is false for an
// unknown id.
func (s *Service) Customer(ctx context.Context, customerID string) (c Customer, found bool, err error) {
	c, _, found, err = s.store.Load(ctx, customerID)
	return c, found, err
}
