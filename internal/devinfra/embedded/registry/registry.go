// Package registry runs an embedded schema registry for `shop dev` and
// tests: a small server of our own that speaks the Confluent Schema
// Registry REST API (v1, content type application/vnd.schemaregistry.v1+json,
// errors as {"error_code":N,"message":"..."} with Confluent's codes), with
// real Avro compatibility checks by hamba/avro.
//
// Guarantees:
//
//   - Persistence. Every acknowledged change (registration, delete, config,
//     mode) is written to Config.File atomically (temporary file, fsync,
//     rename) before the answer; a failed write answers 500 50001 and
//     undoes the change in memory. A restart on the same file keeps schema
//     ids, versions, soft deletes, the global and per-subject compatibility
//     levels and modes. The file of the srfake-based registry (a JSON array
//     of {subject, version, id, schema, schemaType, references}) still
//     loads with the same ids; it is rewritten in format 2 (an object) at
//     the first change.
//   - Ids are global per schema: a schema (same type, same normalised
//     form, same references) registered in several subjects has one id,
//     and an id once given is never given to another schema, even after a
//     hard delete (registering that schema again gets its old id back).
//     A schema equal to a live version of the subject returns
//     that version's id without a compatibility check; equal means the
//     same JSON form once parsed (whitespace, key order and namespace
//     spelling do not matter; doc, defaults, aliases do, as for Confluent).
//   - Compatibility. NONE, BACKWARD (the default, or Config.Compatibility),
//     BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL and
//     FULL_TRANSITIVE, per subject or global, checked against live
//     (not soft-deleted) versions only: the latest one, or every one for
//     the _TRANSITIVE levels. BACKWARD means the new schema, as reader,
//     reads data written with the old one; FORWARD the reverse; FULL both.
//     The verdict is avro.NewSchemaCompatibility().Compatible from
//     hamba/avro (reader field aliases, numeric promotions, enum defaults),
//     so it may differ from the Java implementation's in corner cases.
//     POST /compatibility/subjects/{s}/versions checks against what the
//     level asks for (a subject without live versions takes anything);
//     .../versions/{v|latest} against that one version, in the level's
//     direction(s) (unknown subject 40401, version 40402).
//   - GET /schemas/ids/{id} finds the id whatever ?subject= says (as
//     Confluent does), and also finds ids whose versions are all
//     soft-deleted; an id whose versions are all hard-deleted is 40403.
//   - Modes READWRITE, READONLY (registrations and deletes answer 422
//     42205) and IMPORT (registrations may carry an explicit id and
//     version, and are not checked for compatibility).
//
// Not supported: schema types other than AVRO (JSON and PROTOBUF answer
// 422 42201); contexts (/contexts/...) and the multi-tenant :.ctx: subject
// prefixes; references beyond storing them and resolving them to parse the
// referencing schema (GET .../referencedby answers the ids of the live
// versions that name the version, and a referenced version cannot be
// deleted, 42206); normalize=true (schemas are always compared normalised);
// metadata, rule sets, GUIDs, data contracts, exporters, READONLY_OVERRIDE,
// pagination (offset/limit), authentication.
package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Config configures the embedded registry.
type Config struct {
	File   string       // JSON file the registry persists to; empty keeps it in memory
	Addr   string       // listen address; default 127.0.0.1:0
	Logger *slog.Logger // optional

	// Compatibility is the global compatibility level until one is set
	// through PUT /config (that one is persisted and wins); empty means
	// Confluent's default, BACKWARD.
	Compatibility string
}

// Server is a running embedded registry.
type Server struct {
	file     string
	defLevel string
	log      *slog.Logger

	mu sync.Mutex // guards st; held across the persisting of a change
	st *state

	srv  *http.Server
	ln   net.Listener
	done chan struct{}

	connMu sync.Mutex
	conns  map[net.Conn]http.ConnState
}

// Start loads the registry file (if any) and serves the registry.
func Start(cfg Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	def := Backward
	if cfg.Compatibility != "" {
		l, ok := level(cfg.Compatibility)
		if !ok {
			return nil, fmt.Errorf("schema registry: invalid compatibility level %q", cfg.Compatibility)
		}
		def = l
	}
	st := newState()
	if cfg.File != "" {
		var err error
		if st, err = load(cfg.File); err != nil {
			return nil, err
		}
	}
	for _, w := range st.warnings {
		log.Warn("schema registry file", "component", "registry", "file", cfg.File, "warning", w)
	}
	s := &Server{file: cfg.File, defLevel: def, log: log, st: st, done: make(chan struct{})}
	addr := cmp.Or(cfg.Addr, "127.0.0.1:0")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("schema registry listen %s: %w", addr, err)
	}
	s.ln = ln
	s.conns = map[net.Conn]http.ConnState{}
	s.srv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second, ConnState: s.track}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("schema registry stopped", "component", "registry", "err", err)
		}
	}()
	log.Info("embedded schema registry started", "component", "registry", "url", s.URL(), "file", cfg.File)
	return s, nil
}

// URL is the registry's base URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Stop stops serving, letting requests under way finish; the file is
// already up to date.
func (s *Server) Stop(ctx context.Context) error {
	stopped := make(chan error, 1)
	go func() { stopped <- s.srv.Shutdown(ctx) }()
	// Shutdown waits up to 5 s for a connection that has sent nothing yet
	// (a client's spare dial, as franz-go's sr client makes for parallel
	// calls): close those, since no new request is served any more.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-stopped:
			<-s.done
			return err
		case <-tick.C:
			s.connMu.Lock()
			for c, st := range s.conns {
				if st == http.StateNew {
					_ = c.Close()
				}
			}
			s.connMu.Unlock()
		}
	}
}

// track follows connection states, for Stop.
func (s *Server) track(c net.Conn, st http.ConnState) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(s.conns, c)
	default:
		s.conns[c] = st
	}
}

// change runs fn on the state under the lock and, if it succeeds, persists
// the state before returning; if fn or the persisting fails, the state is
// as before.
func (s *Server) change(fn func(st *state) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.st.clone()
	if err := fn(s.st); errors.Is(err, errNoChange) {
		s.st = prev
		return nil
	} else if err != nil {
		s.st = prev
		return err
	}
	if s.file == "" {
		return nil
	}
	if err := s.st.save(s.file); err != nil {
		s.st = prev
		s.log.Error("persist schema registry", "component", "registry", "file", s.file, "err", err)
		return &apiError{http.StatusInternalServerError, 50001, "Error while persisting the registry: " + err.Error()}
	}
	return nil
}

// errNoChange, from a change's fn, means it changed nothing: nothing to
// persist.
var errNoChange = errors.New("no change")

// read runs fn on the state under the lock.
func (s *Server) read(fn func(st *state) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fn(s.st)
}
