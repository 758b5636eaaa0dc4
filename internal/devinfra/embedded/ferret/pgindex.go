package ferret

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// On the PostgreSQL backend FerretDB v1.24 stores a collection as a table
// of one jsonb column, _jsonb, and pushes a top-level equality {f: v} of a
// find, update or delete down as
//
//	WHERE _jsonb->'f' @> '<v as json>'
//
// (internal/backends/postgresql/query.go, prepareWhereClause). The indexes
// it creates for createIndexes, _id's included, are btree indexes on
// (_jsonb->'f') (metadata/registry.go, indexesCreate): a btree cannot serve
// @>, so every pushed-down look-up is a sequential scan of the table,
// which grows with it. The indexer gives each index a twin that serves the
// pushed-down form: a GIN index on the same expression,
//
//	CREATE INDEX ... USING gin ((_jsonb->'f') jsonb_path_ops)
//
// for the first field of every index (the one an equality look-up names),
// nested fields excepted (FerretDB does not push them down). It does this
// for every collection of every database of the server, every
// IndexSyncInterval, and at once on [Server.SyncIndexes]; a collection
// dropped takes its twins with it. The key of the pushed-down expression is
// a query parameter: only a custom plan, which has the key as a constant,
// matches the index, hence plan_cache_mode=force_custom_plan on FerretDB's
// connections (see backendURL).

// IndexSyncInterval is how often the PostgreSQL backend's indexes are
// given their push-down twins.
const IndexSyncInterval = 500 * time.Millisecond

// DefaultPoolSize is FerretDB's default pool of PostgreSQL connections
// (FerretDB's own default is 50): twice docstore.DefaultInFlight, so bulk
// writes at their budget leave half of it to reads.
const DefaultPoolSize = 100

// metadataTable is FerretDB's table of collections in each database schema.
const metadataTable = "_ferretdb_database_metadata"

// backendURL is raw with FerretDB's pool size and custom plans set, unless
// raw sets them.
func backendURL(raw string, pool int) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	q := u.Query()
	if !q.Has("pool_max_conns") {
		q.Set("pool_max_conns", strconv.Itoa(pool))
	}
	if !q.Has("plan_cache_mode") {
		q.Set("plan_cache_mode", "force_custom_plan")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

type indexer struct {
	pool *pgxpool.Pool
}

func newIndexer(ctx context.Context, raw string) (*indexer, error) {
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL URL: %w", err)
	}
	cfg.MaxConns = 2
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Ping(pctx); err != nil {
		p.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return &indexer{pool: p}, nil
}

func (ix *indexer) close() { ix.pool.Close() }

func (ix *indexer) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		_ = ix.sync(ctx) // retried on the next tick
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// twin is a push-down index to have on schema.table for field.
type twin struct{ schema, table, field string }

func (t twin) name() string {
	h := sha256.Sum256([]byte(t.table + "\x00" + t.field))
	return "ferret_pd_" + hex.EncodeToString(h[:8])
}

// sync creates the missing twins of every database's indexes.
func (ix *indexer) sync(ctx context.Context) error {
	rows, err := ix.pool.Query(ctx, `SELECT table_schema FROM information_schema.tables WHERE table_name = $1`, metadataTable)
	if err != nil {
		return err
	}
	schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, schema := range schemas {
		if err := ix.syncSchema(ctx, schema); err != nil {
			return err
		}
	}
	return nil
}

func (ix *indexer) syncSchema(ctx context.Context, schema string) error {
	// The metadata is an sjson document: the key order of each index's key
	// document is in the schema, $s.p.indexes.i[n].$s.p.key.$s.$k.
	rows, err := ix.pool.Query(ctx, fmt.Sprintf(`SELECT m._jsonb->>'table', s->'$s'->'p'->'key'->'$s'->'$k'->>0
		FROM %s m, jsonb_array_elements(m._jsonb->'$s'->'p'->'indexes'->'i') s`, pgx.Identifier{schema, metadataTable}.Sanitize()))
	if err != nil {
		return err
	}
	var want []twin
	for rows.Next() {
		var table string
		var field *string
		if err := rows.Scan(&table, &field); err != nil {
			rows.Close()
			return err
		}
		if field != nil && *field != "" && !strings.Contains(*field, ".") {
			want = append(want, twin{schema, table, *field})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(want) == 0 {
		return nil
	}
	rows, err = ix.pool.Query(ctx, `SELECT indexname FROM pg_indexes WHERE schemaname = $1`, schema)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	for _, t := range want {
		if have[t.name()] {
			continue
		}
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s USING gin ((_jsonb->%s) jsonb_path_ops) WITH (fastupdate = off)`,
			pgx.Identifier{t.name()}.Sanitize(), pgx.Identifier{t.schema, t.table}.Sanitize(), quoteLiteral(t.field))
		if _, err := ix.pool.Exec(ctx, q); err != nil {
			// The collection may just have been dropped.
			if ctx.Err() != nil {
				return err
			}
			continue
		}
		have[t.name()] = true
	}
	return nil
}

// quoteLiteral is s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
