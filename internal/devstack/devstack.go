// Package devstack starts the whole embedded infrastructure of `shop dev`
// and of component tests under one data directory: Kafka (kfake), the schema
// registry (srfake, persisted), a MongoDB-compatible server (FerretDB on
// SQLite) and a private PostgreSQL cluster. Everything persists under the
// directory, so a restart keeps every topic, schema, read model and row.
// The addresses in use are written to <dir>/endpoints.json so that other
// commands (`shop topics`, `shop replay`) can find a running stack.
package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"shopstream/internal/embedded/ferret"
	"shopstream/internal/embedded/kafka"
	"shopstream/internal/embedded/postgres"
	"shopstream/internal/embedded/psp"
	"shopstream/internal/embedded/registry"
	"shopstream/internal/embedded/smtpd"
	"shopstream/schemas"
)

// Config configures the stack. Empty addresses pick free ports.
type Config struct {
	Dir          string
	KafkaAddr    string
	RegistryAddr string
	MongoAddr    string
	PostgresPort int
	// The payment simulators' behaviour (card PSP and SEPA bank alike).
	PSPLatency     time.Duration
	PSPFailureRate float64
	Logger         *slog.Logger
}

// Endpoints are the addresses of a running stack.
type Endpoints struct {
	Brokers     []string `json:"brokers"`
	RegistryURL string   `json:"registry_url"`
	MongoURI    string   `json:"mongo_uri"`
	PostgresURL string   `json:"postgres_url"`
	CardPSPURL  string   `json:"card_psp_url"`
	SepaBankURL string   `json:"sepa_bank_url"`
	SMTPAddr    string   `json:"smtp_addr"`      // writes each message to MailDir/*.eml
	MailDir     string   `json:"mail_dir"`       // <dir>/mail, absolute
	HTTP        string   `json:"http,omitempty"` // the gateway, when `shop dev` serves one
}

// Stack is the running embedded infrastructure.
type Stack struct {
	Endpoints Endpoints
	dir       string
	kafka     *kafka.Cluster
	registry  *registry.Server
	mongo     *ferret.Server
	pg        *postgres.Server
	card      *psp.Server
	bank      *psp.Server
	smtp      *smtpd.Server
}

// Start starts every part; on failure it stops what it had started.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	s := &Stack{dir: cfg.Dir}
	mailDir, err := filepath.Abs(filepath.Join(cfg.Dir, "mail"))
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	defer func() {
		if err != nil {
			s.Stop(context.WithoutCancel(ctx))
		}
	}()
	// PostgreSQL and FerretDB take the longest: start them side by side.
	var wg sync.WaitGroup
	var pgErr, mongoErr error
	wg.Go(func() {
		s.pg, pgErr = postgres.Start(ctx, postgres.Config{Dir: filepath.Join(cfg.Dir, "postgres"), Port: cfg.PostgresPort, Logger: log})
	})
	wg.Go(func() {
		s.mongo, mongoErr = ferret.Start(ctx, ferret.Config{Dir: filepath.Join(cfg.Dir, "mongo"), Addr: cfg.MongoAddr, Logger: log})
	})
	if s.kafka, err = kafka.Start(kafka.Config{Dir: filepath.Join(cfg.Dir, "kafka"), Addr: cfg.KafkaAddr, Logger: log}); err == nil {
		s.registry, err = registry.Start(registry.Config{File: filepath.Join(cfg.Dir, "registry.json"), Addr: cfg.RegistryAddr, Compatibility: schemas.Policy, Logger: log})
	}
	if err == nil {
		s.card, err = psp.Start(ctx, psp.Config{Kind: psp.KindCard, File: filepath.Join(cfg.Dir, "psp", "card.jsonl"),
			Latency: cfg.PSPLatency, FailureRate: cfg.PSPFailureRate, Seed: 1, Logger: log})
	}
	if err == nil {
		s.bank, err = psp.Start(ctx, psp.Config{Kind: psp.KindSEPA, File: filepath.Join(cfg.Dir, "psp", "sepa.jsonl"),
			Latency: cfg.PSPLatency, FailureRate: cfg.PSPFailureRate, Seed: 2, Logger: log})
	}
	if err == nil {
		s.smtp, err = smtpd.Start(ctx, smtpd.Config{Dir: mailDir, Logger: log})
	}
	wg.Wait()
	if err = errors.Join(err, pgErr, mongoErr); err != nil {
		return nil, err
	}
	s.Endpoints = Endpoints{Brokers: s.kafka.Brokers(), RegistryURL: s.registry.URL(), MongoURI: s.mongo.URI(), PostgresURL: s.pg.URL(),
		CardPSPURL: s.card.URL(), SepaBankURL: s.bank.URL(), SMTPAddr: s.smtp.Addr(), MailDir: mailDir}
	return s, nil
}

// Stop stops every part that runs, in reverse order of dependence, and
// removes endpoints.json.
func (s *Stack) Stop(ctx context.Context) error {
	var errs []error
	if s.smtp != nil {
		errs = append(errs, s.smtp.Stop(ctx))
	}
	for _, p := range []*psp.Server{s.card, s.bank} {
		if p != nil {
			errs = append(errs, p.Stop(ctx))
		}
	}
	if s.registry != nil {
		errs = append(errs, s.registry.Stop(ctx))
	}
	if s.kafka != nil {
		s.kafka.Close()
	}
	if s.mongo != nil {
		errs = append(errs, s.mongo.Stop(ctx))
	}
	if s.pg != nil {
		errs = append(errs, s.pg.Stop(ctx))
	}
	if err := os.Remove(filepath.Join(s.dir, endpointsFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

const endpointsFile = "endpoints.json"

// WriteEndpoints records where a running stack listens.
func WriteEndpoints(dir string, e Endpoints) error {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, endpointsFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, endpointsFile))
}

// ReadEndpoints finds a running `shop dev` by its data directory.
func ReadEndpoints(dir string) (Endpoints, error) {
	var e Endpoints
	b, err := os.ReadFile(filepath.Join(dir, endpointsFile))
	if errors.Is(err, os.ErrNotExist) {
		return e, fmt.Errorf("no running `shop dev` found in --data-dir %s (no %s)", dir, endpointsFile)
	}
	if err != nil {
		return e, err
	}
	return e, json.Unmarshal(b, &e)
}
