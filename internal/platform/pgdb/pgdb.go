// Package pgdb connects to the PostgreSQL write model and applies the
// migrations of every context. Each context owns one schema and lists its
// migrations in order; Migrate applies the missing ones, each in its own
// transaction, under an advisory lock so that several instances starting at
// once apply each migration exactly once.
package pgdb

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Migration is one step of one context's schema.
type Migration struct {
	Context string // owner, e.g. "catalog"; also its schema name
	Version int    // 1, 2, … within the context
	SQL     string
}

// DefaultMaxConns is the pool size unless the URL sets pool_max_conns.
const DefaultMaxConns = 20

// Connect opens a pool and checks the server answers.
func Connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres url: %w", err)
	}
	// The server notices a dead client within about a minute rather than
	// the kernel's two hours, so that a session-held advisory lock (the
	// outbox relay's leadership) is released when its host dies.
	for k, v := range map[string]string{"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3"} {
		if _, set := cfg.ConnConfig.RuntimeParams[k]; !set {
			cfg.ConnConfig.RuntimeParams[k] = v
		}
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgx's default (4 on a small machine) starves the components that
		// share the pool: commands, relay, processors.
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres ping: %w", err)
	}
	return pool, nil
}

// migrateLock is the advisory lock key that serialises migrators.
const migrateLock = 0x5d0b_0001

// Migrate applies every migration not yet recorded, in the given order, and
// returns how many it applied.
func Migrate(ctx context.Context, pool *pgxpool.Pool, migrations []Migration) (int, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
		return 0, fmt.Errorf("migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLock) //nolint:errcheck // released with the session anyway
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS public.shop_migrations (
		context text NOT NULL, version int NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (context, version))`); err != nil {
		return 0, fmt.Errorf("migrations table: %w", err)
	}
	applied := 0
	for _, m := range migrations {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `INSERT INTO public.shop_migrations (context, version) VALUES ($1, $2) ON CONFLICT DO NOTHING`, m.Context, m.Version)
			if err != nil || tag.RowsAffected() == 0 {
				return err
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			applied++
			return nil
		})
		if err != nil {
			return applied, fmt.Errorf("migration %s/%d: %w", m.Context, m.Version, err)
		}
	}
	return applied, nil
}
