// Package ferret runs an embedded, MongoDB wire-compatible server (FerretDB)
// inside the current process, on one of FerretDB's two backends:
//
//   - PostgreSQL (Config.PostgreSQLURL set): documents live as jsonb in a
//     PostgreSQL database (shop dev gives it a database of its embedded
//     cluster). When that URL has a password the server requires it: a
//     client must authenticate with the same user and password ([Server.URI]
//     carries them, with authMechanism=PLAIN). FerretDB pushes top-level equality filters down to SQL, and
//     the server makes them index-served (see [Server.SyncIndexes]); look-ups
//     cost the same at 1k and 100k documents.
//   - SQLite (Config.Dir only): no PostgreSQL needed, but every look-up,
//     _id included, reads the whole collection (see
//     /work/shared/design/READ-STORE.md); fine for small tests only.
//
// It is meant for tests and single-node development setups: clients talk to
// it with the official MongoDB driver exactly as they would to a real MongoDB.
package ferret

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// DefaultAddr is the listen address used when Config.Addr is empty.
const DefaultAddr = "127.0.0.1:0"

// Config configures an embedded server.
type Config struct {
	// Dir is the SQLite data directory, used when PostgreSQLURL is empty.
	// It is created if missing; data written to it survives restarts of a
	// server using the same Dir.
	Dir string

	// PostgreSQLURL, when set, selects FerretDB's PostgreSQL backend on
	// that database (it must exist; FerretDB makes one schema per MongoDB
	// database in it), e.g. postgres://shop@127.0.0.1:5433/ferretdb.
	// Start adds pool_max_conns=PoolSize and plan_cache_mode=
	// force_custom_plan unless the URL sets them.
	PostgreSQLURL string

	// PoolSize is FerretDB's pool of PostgreSQL connections
	// (default [DefaultPoolSize]). An update command holds one connection
	// per statement until it returns (its internal/handler/msg_update.go),
	// so it must exceed the write statements in flight at once
	// (docstore.DefaultInFlight) with room left for reads; the server's
	// max_connections must exceed it plus its other clients.
	PoolSize int

	// Addr is the TCP listen address, e.g. "127.0.0.1:0" (the default,
	// picks a free port) or "127.0.0.1:27018".
	Addr string

	// noTwins leaves the PostgreSQL backend's indexes without their
	// push-down twins (for the backend benchmark's baseline).
	noTwins bool

	// Logger optionally receives FerretDB's own logs, filtered to Error
	// level (FerretDB logs every connection at Info, and every command it
	// does not support, such as the driver's endSessions at disconnect, at
	// Warn). If nil, FerretDB's logs are discarded.
	Logger *slog.Logger
}

// Server is a running embedded FerretDB instance.
type Server struct {
	uri     string
	backend string   // "sqlite" or "postgresql"
	idx     *indexer // PostgreSQL backend only
	cancel  context.CancelFunc
	done    chan struct{} // closed when FerretDB's Run has returned
	once    sync.Once
}

// Start starts an embedded server and returns once it answers a ping sent
// through the official MongoDB driver. ctx bounds startup only; the server
// keeps running until Stop is called.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	// ferretdb.New leaks its backend (whose finalizer then panics) when it
	// cannot listen: refuse a busy fixed address before.
	if _, port, err := net.SplitHostPort(addr); err == nil && port != "0" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("ferret: listen on %s: %w", addr, err)
		}
		_ = l.Close()
	}
	fcfg := &ferretdb.Config{Listener: ferretdb.ListenerConfig{TCP: addr}, Logger: errorLogger(cfg.Logger)}
	var idx *indexer
	var creds *url.Userinfo // the clients' credentials (PostgreSQL backend with a password)
	switch {
	case cfg.PostgreSQLURL != "":
		pgURL, err := backendURL(cfg.PostgreSQLURL, cmp.Or(cfg.PoolSize, DefaultPoolSize))
		if err != nil {
			return nil, fmt.Errorf("ferret: PostgreSQL URL: %w", err)
		}
		if !cfg.noTwins {
			if idx, err = newIndexer(ctx, cfg.PostgreSQLURL); err != nil {
				return nil, fmt.Errorf("ferret: %w", err)
			}
		}
		if fcfg.PostgreSQLURL, creds, err = withoutPassword(pgURL); err != nil {
			return nil, fmt.Errorf("ferret: PostgreSQL URL: %w", err)
		}
		fcfg.Handler = "postgresql"
	case cfg.Dir != "":
		dir, err := filepath.Abs(cfg.Dir)
		if err != nil {
			return nil, fmt.Errorf("ferret: data dir: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("ferret: create data dir: %w", err)
		}
		// Build "file:/abs/dir/" with proper escaping of unusual characters.
		fcfg.Handler, fcfg.SQLiteURL = "sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir) + "/"}).String()
	default:
		return nil, errors.New("ferret: Config.Dir or Config.PostgreSQLURL is required")
	}

	f, err := ferretdb.New(fcfg)
	if err != nil {
		if idx != nil {
			idx.close()
		}
		return nil, fmt.Errorf("ferret: %w", err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	s := &Server{cancel: cancel, done: make(chan struct{}), backend: fcfg.Handler, idx: idx}
	go func() {
		defer close(s.done)
		_ = f.Run(runCtx) // always returns nil; closes listener, conns and backend
		if idx != nil {
			idx.close()
		}
	}()
	if idx != nil {
		go idx.run(runCtx, IndexSyncInterval)
	}

	// The TCP listener is already bound by ferretdb.New, so MongoDBURI does
	// not block here.
	uri, err := clientURI(f.MongoDBURI(), creds)
	if err != nil {
		_ = s.Stop(context.Background())
		return nil, fmt.Errorf("ferret: %w", err)
	}
	s.uri = uri

	if err := ping(ctx, uri); err != nil {
		_ = s.Stop(context.Background())
		return nil, fmt.Errorf("ferret: server at %s did not answer ping: %w", uri, err)
	}
	return s, nil
}

// URI returns the connection string, e.g. "mongodb://127.0.0.1:PORT/".
func (s *Server) URI() string { return s.uri }

// Backend is FerretDB's backend: "postgresql" or "sqlite".
func (s *Server) Backend() string { return s.backend }

// SyncIndexes gives every index created through the MongoDB API its
// push-down twin now, instead of within [IndexSyncInterval] (see pgindex.go).
// It does nothing on SQLite.
func (s *Server) SyncIndexes(ctx context.Context) error {
	if s.idx == nil {
		return nil
	}
	return s.idx.sync(ctx)
}

// Stop stops the server and waits until its listener, client connections
// and SQLite backend are closed. Clients that are still connected are given
// up to a few seconds to disconnect. If ctx ends first, Stop returns
// ctx.Err() while shutdown continues in the background. Stop is safe to call
// more than once and from several goroutines.
func (s *Server) Stop(ctx context.Context) error {
	s.once.Do(s.cancel)
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ferret: stop: %w", ctx.Err())
	}
}

// clientURI rewrites an unspecified listen host (0.0.0.0, ::) to loopback so
// the URI is dialable, and adds creds, when set, with the PLAIN mechanism
// FerretDB passes on to PostgreSQL.
func clientURI(raw string, creds *url.Userinfo) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if creds != nil {
		u.User = creds
		q := u.Query()
		q.Set("authMechanism", "PLAIN")
		u.RawQuery = q.Encode()
		if u.Path == "" {
			u.Path = "/"
		}
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		u.Host = net.JoinHostPort("127.0.0.1", port)
	}
	return u.String(), nil
}

// withoutPassword returns raw without its password, and the user and
// password it had (nil without a password). FerretDB's PostgreSQL backend
// connects with the credentials each client authenticates with (SASL
// PLAIN) when its URL has none: given the URL without the password, the
// server refuses every command of a client that does not present it, as
// PostgreSQL refuses the connection FerretDB opens for it.
func withoutPassword(raw string) (string, *url.Userinfo, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", nil, err
	}
	if u.User == nil {
		return raw, nil, nil
	}
	if _, ok := u.User.Password(); !ok {
		return raw, nil, nil
	}
	creds := u.User
	u.User = url.User(creds.Username())
	return u.String(), creds, nil
}

func ping(ctx context.Context, uri string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	return client.Ping(ctx, nil)
}

// errorLogger returns a logger that forwards records at Error level
// to l, or discards everything if l is nil.
func errorLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(minLevelHandler{min: slog.LevelError, h: l.Handler()})
}

// minLevelHandler drops records below min before they reach h.
type minLevelHandler struct {
	min slog.Level
	h   slog.Handler
}

func (m minLevelHandler) Enabled(ctx context.Context, lvl slog.Level) bool {
	return lvl >= m.min && m.h.Enabled(ctx, lvl)
}

func (m minLevelHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < m.min {
		return nil
	}
	return m.h.Handle(ctx, r)
}

func (m minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevelHandler{min: m.min, h: m.h.WithAttrs(attrs)}
}

func (m minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{min: m.min, h: m.h.WithGroup(name)}
}
