// Package registry runs an embedded schema registry (franz-go's srfake,
// which speaks the Confluent REST API) for `shop dev` and tests, persisted
// to a JSON file: every successful change is written to the file
// atomically, and a restart seeds the registry from it, so schema ids never
// change across restarts (records in the log keep decoding). Soft-deleted
// versions are not persisted.
package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// Config configures the embedded registry.
type Config struct {
	File   string       // JSON file the registry persists to; empty keeps it in memory
	Addr   string       // listen address; default 127.0.0.1:0
	Logger *slog.Logger // optional
}

// Server is a running embedded registry.
type Server struct {
	reg  *srfake.Registry
	file string
	srv  *http.Server
	ln   net.Listener
	log  *slog.Logger
	mu   sync.Mutex // serialises snapshots
	done chan struct{}
}

// entry is one persisted subject version.
type entry struct {
	Subject    string               `json:"subject"`
	Version    int                  `json:"version"`
	ID         int                  `json:"id"`
	Schema     string               `json:"schema"`
	Type       sr.SchemaType        `json:"schemaType"`
	References []sr.SchemaReference `json:"references,omitempty"`
}

// Start loads the registry file (if any) and serves the registry.
func Start(cfg Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{reg: srfake.NewRegistry(), file: cfg.File, log: log, done: make(chan struct{})}
	if err := s.load(); err != nil {
		return nil, err
	}
	addr := cmp.Or(cfg.Addr, "127.0.0.1:0")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("schema registry listen %s: %w", addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.persisting(s.reg.Handler()), ReadHeaderTimeout: 10 * time.Second}
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

// Stop stops serving; the file is already up to date.
func (s *Server) Stop(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// persisting wraps the registry handler: after a successful change it
// writes a snapshot before the client gets its answer, so an acknowledged
// registration is never lost.
func (s *Server) persisting(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead || s.file == "" {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if rec.Code < 300 {
			if err := s.snapshot(); err != nil {
				s.log.Error("persist schema registry", "component", "registry", "err", err)
				http.Error(w, `{"error_code":50001,"message":"could not persist the registry"}`, http.StatusInternalServerError)
				return
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// get calls the registry's own handler in-process.
func (s *Server) get(path string, into any) error {
	rec := httptest.NewRecorder()
	s.reg.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, rec.Code, rec.Body.String())
	}
	return json.Unmarshal(rec.Body.Bytes(), into)
}

func (s *Server) snapshot() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var subjects []string
	if err := s.get("/subjects", &subjects); err != nil {
		return err
	}
	var entries []entry
	for _, subj := range subjects {
		var versions []int
		if err := s.get("/subjects/"+subj+"/versions", &versions); err != nil {
			return err
		}
		for _, v := range versions {
			var e entry
			if err := s.get(fmt.Sprintf("/subjects/%s/versions/%d", subj, v), &e); err != nil {
				return err
			}
			entries = append(entries, e)
		}
	}
	b, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.file + ".tmp"
	if err := os.MkdirAll(filepath.Dir(s.file), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.file)
}

// load seeds the registry from the file, in id order so that a schema
// shared by several subjects keeps its one id.
func (s *Server) load() (err error) {
	if s.file == "" {
		return nil
	}
	b, err := os.ReadFile(s.file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read schema registry file: %w", err)
	}
	var entries []entry
	if err := json.Unmarshal(b, &entries); err != nil {
		return fmt.Errorf("schema registry file %s: %w", s.file, err)
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Version, b.Version))
	})
	defer func() { // SeedSchema panics on a slot already taken
		if r := recover(); r != nil {
			err = fmt.Errorf("schema registry file %s: %v", s.file, r)
		}
	}()
	seeded := map[int]bool{}
	for _, e := range entries {
		sch := sr.Schema{Schema: e.Schema, Type: e.Type, References: e.References}
		if !seeded[e.ID] {
			s.reg.SeedSchema(e.Subject, e.Version, e.ID, sch)
			seeded[e.ID] = true
			continue
		}
		id, v, err := s.reg.RegisterSchema(e.Subject, sch)
		if err != nil || id != e.ID || v != e.Version {
			return fmt.Errorf("schema registry file %s: %s v%d id %d restored as v%d id %d: %v", s.file, e.Subject, e.Version, e.ID, v, id, err)
		}
	}
	return nil
}
