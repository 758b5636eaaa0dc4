package app

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"shopstream/internal/platform/idempotency"
	"shopstream/internal/platform/outbox"
	"shopstream/internal/platform/pgdb"
	"shopstream/processors/saga"
	"shopstream/producers/billing"
	"shopstream/producers/carts"
	"shopstream/producers/catalog"
	"shopstream/producers/customers"
	"shopstream/producers/inventory"
	"shopstream/producers/notifications"
	"shopstream/producers/orders"
	"shopstream/producers/payments"
	"shopstream/producers/reviews"
)

// The write contexts, each the owner of its tables. With
// Config.DatabasePerContext each has a PostgreSQL database of its own,
// holding its tables, its outbox and its idempotency keys, so that no
// transaction can span two contexts: they reach each other through
// commands and events only.
const (
	CtxCustomers     = "customers"
	CtxCatalog       = "catalog"
	CtxInventory     = "inventory"
	CtxOrders        = "orders" // orders and the carts they are checked out from
	CtxReviews       = "reviews"
	CtxPayments      = "payments"
	CtxBilling       = "billing"
	CtxNotifications = "notifications"
	CtxSaga          = "saga" // the order saga's state and deadlines
)

// contextMigrations lists each context's own migrations, in context order.
// The cart belongs to the orders context: checking a cart out into an
// order is one decision, taken in one transaction.
func contextMigrations() []struct {
	name       string
	migrations []pgdb.Migration
} {
	return []struct {
		name       string
		migrations []pgdb.Migration
	}{
		{CtxCustomers, customers.Migrations()},
		{CtxCatalog, catalog.Migrations()},
		{CtxInventory, inventory.Migrations()},
		{CtxOrders, slices.Concat(carts.Migrations(), orders.Migrations())},
		{CtxReviews, reviews.Migrations()},
		{CtxPayments, payments.Migrations()},
		{CtxBilling, billing.Migrations()},
		{CtxNotifications, notifications.Migrations()},
		{CtxSaga, saga.Migrations()},
	}
}

// Migrations lists every migration of the shop, for one shared database:
// the outbox, the idempotency keys, then each context's tables.
func Migrations() []pgdb.Migration {
	all := slices.Concat(outbox.Migrations(), idempotency.Migrations())
	for _, c := range contextMigrations() {
		all = append(all, c.migrations...)
	}
	return all
}

// ContextDatabases are the databases of DatabasePerContext, by context:
// each context's URL beside base, and what it holds.
func ContextDatabases(base string) ([]ContextDatabase, error) {
	var out []ContextDatabase
	for _, c := range contextMigrations() {
		name, err := pgdb.ContextDatabase(base, c.name)
		if err != nil {
			return nil, err
		}
		url, err := pgdb.DatabaseURL(base, name)
		if err != nil {
			return nil, err
		}
		if !strings.Contains(url, "pool_max_conns") {
			url += map[bool]string{true: "&", false: "?"}[strings.Contains(url, "?")] + fmt.Sprintf("pool_max_conns=%d", contextMaxConns)
		}
		out = append(out, ContextDatabase{Context: c.name, Database: name, URL: url,
			Migrations: slices.Concat(outbox.Migrations(), idempotency.Migrations(), c.migrations)})
	}
	return out, nil
}

// ContextDatabase is one context's own database.
type ContextDatabase struct {
	Context    string
	Database   string
	URL        string
	Migrations []pgdb.Migration // its outbox, its idempotency keys, its tables
}

// contextMaxConns is a context pool's size: nine of them share the
// server's connections.
const contextMaxConns = 6

// MigrateAll creates what the shop's PostgreSQL needs at base and applies
// its migrations: one database, or, perContext, one database per context
// (created when missing). It returns how many migrations it applied.
func MigrateAll(ctx context.Context, base string, perContext bool) (int, error) {
	dbs, err := openDatabases(ctx, base, perContext)
	if err != nil {
		return 0, err
	}
	defer dbs.close()
	return dbs.migrate(ctx)
}

// databases are the pools of an instance's write contexts: one shared
// pool, or one per context.
type databases struct {
	shared     *pgxpool.Pool
	byContext  map[string]*pgxpool.Pool
	migrations map[*pgxpool.Pool][]pgdb.Migration
	order      []string // contexts, in contextMigrations order
}

// openDatabases connects to base, or to each context's database beside
// it (creating those missing).
func openDatabases(ctx context.Context, base string, perContext bool) (*databases, error) {
	d := &databases{migrations: map[*pgxpool.Pool][]pgdb.Migration{}}
	if !perContext {
		pool, err := pgdb.Connect(ctx, base)
		if err != nil {
			return nil, err
		}
		d.shared = pool
		d.migrations[pool] = Migrations()
		return d, nil
	}
	cds, err := ContextDatabases(base)
	if err != nil {
		return nil, err
	}
	d.byContext = map[string]*pgxpool.Pool{}
	for _, cd := range cds {
		if err := pgdb.EnsureDatabase(ctx, base, cd.Database); err != nil {
			d.close()
			return nil, err
		}
		pool, err := pgdb.Connect(ctx, cd.URL)
		if err != nil {
			d.close()
			return nil, fmt.Errorf("database of %s: %w", cd.Context, err)
		}
		d.byContext[cd.Context] = pool
		d.migrations[pool] = cd.Migrations
		d.order = append(d.order, cd.Context)
	}
	return d, nil
}

// of is the pool holding context's tables.
func (d *databases) of(context string) *pgxpool.Pool {
	if d.shared != nil {
		return d.shared
	}
	p := d.byContext[context]
	if p == nil {
		panic("app: no database for context " + context)
	}
	return p
}

// each calls f with every distinct pool, named by its context ("" for
// the shared one), in context order.
func (d *databases) each(f func(context string, pool *pgxpool.Pool) error) error {
	if d.shared != nil {
		return f("", d.shared)
	}
	for _, c := range d.order {
		if err := f(c, d.byContext[c]); err != nil {
			return err
		}
	}
	return nil
}

func (d *databases) migrate(ctx context.Context) (int, error) {
	total := 0
	err := d.each(func(c string, pool *pgxpool.Pool) error {
		n, err := pgdb.Migrate(ctx, pool, d.migrations[pool])
		total += n
		if err != nil && c != "" {
			return fmt.Errorf("database of %s: %w", c, err)
		}
		return err
	})
	return total, err
}

func (d *databases) close() {
	_ = d.each(func(_ string, pool *pgxpool.Pool) error { pool.Close(); return nil })
}

// commandContext is the context of a command, from its name
// ("orders.PlaceOrder" → "orders"; a cart's commands belong to orders).
func commandContext(name string) string {
	c, _, _ := strings.Cut(name, ".")
	if c == "carts" {
		return CtxOrders
	}
	return c
}
