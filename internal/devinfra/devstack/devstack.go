// Package devstack starts the whole embedded infrastructure of `shop dev`,
// `shop infra` and of component tests under one data directory: Kafka
// (kfake, unless [Config.Brokers] names a real cluster), the schema
// registry (Confluent-compatible, persisted), a private PostgreSQL cluster and
// a MongoDB-compatible server (FerretDB on the PostgreSQL backend, in the
// cluster's database "ferretdb"; see [startMongo]). Everything persists under the
// directory, so a restart keeps every topic, schema, read model and row.
// The addresses in use are written to <dir>/endpoints.json ([WriteEndpoints])
// so that other commands (`shop run`, `shop migrate`, `shop topics`, `shop
// dlq`, `shop replay`, `shop loadtest`) find a running stack by its
// directory ([ReadEndpoints]).
package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"shopstream/internal/devinfra/embedded/ferret"
	"shopstream/internal/devinfra/embedded/kafka"
	"shopstream/internal/devinfra/embedded/postgres"
	"shopstream/internal/devinfra/embedded/psp"
	"shopstream/internal/devinfra/embedded/registry"
	"shopstream/internal/devinfra/embedded/smtpd"
	"shopstream/schemas"
)

// The addresses `shop dev` listens on unless its flags say otherwise: the
// conventional ports of each server, so that a consumer outside the shop
// keeps its configuration across restarts. A Config's zero values do not
// use them: they pick free ports.
const (
	DefaultKafkaAddr    = "127.0.0.1:9092"
	DefaultRegistryAddr = "127.0.0.1:8081"
	DefaultMongoAddr    = "127.0.0.1:27017"
	DefaultPostgresPort = 5432 // on 127.0.0.1
	DefaultCardPSPAddr  = "127.0.0.1:8091"
	DefaultSepaBankAddr = "127.0.0.1:8092"
	DefaultSMTPAddr     = "127.0.0.1:1025"
)

// Config configures the stack. Empty addresses, port 0 and addresses of
// port 0 pick free ports.
type Config struct {
	Dir       string
	KafkaAddr string
	// Brokers, when not empty, are the seed brokers of a real Kafka
	// cluster to use instead of the embedded broker: none is started,
	// KafkaAddr is unused, and Endpoints.Brokers are these.
	Brokers      []string
	RegistryAddr string
	MongoAddr    string
	PostgresPort int
	CardPSPAddr  string
	SepaBankAddr string
	SMTPAddr     string
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
	SMTPAddr    string   `json:"smtp_addr"`       // writes each message to MailDir/*.eml
	MailDir     string   `json:"mail_dir"`        // <dir>/mail, absolute
	HTTP        string   `json:"http,omitempty"`  // the gateway, when `shop dev` serves one
	Admin       string   `json:"admin,omitempty"` // its admin listener (metrics, lag, pprof)
}

// Stack is the running embedded infrastructure.
type Stack struct {
	Endpoints Endpoints
	Secrets   Secrets // the shop's credentials (LoadSecrets)
	dir       string
	kafka     *kafka.Cluster
	registry  *registry.Server
	mongo     *ferret.Server
	pg        *postgres.Server
	card      *psp.Server
	bank      *psp.Server
	smtp      *smtpd.Server
}

// Start starts every part; on failure it stops what it had started. It
// first makes sure every fixed address of cfg is free (see [CheckAddrs]),
// before anything slow starts.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := CheckAddrs(cfg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	s := &Stack{dir: cfg.Dir}
	if s.Secrets, err = LoadSecrets(cfg.Dir); err != nil {
		return nil, err
	}
	mailDir, err := filepath.Abs(filepath.Join(cfg.Dir, "mail"))
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	defer func() {
		if err != nil {
			s.Stop(context.WithoutCancel(ctx))
		}
	}()
	// PostgreSQL, then FerretDB on it, take the longest: start them beside
	// the rest.
	var wg sync.WaitGroup
	var pgErr, mongoErr error
	wg.Go(func() {
		s.pg, pgErr = postgres.Start(ctx, postgres.Config{Dir: filepath.Join(cfg.Dir, "postgres"), Port: cfg.PostgresPort, Logger: log})
		if pgErr == nil {
			s.mongo, mongoErr = startMongo(ctx, cfg, s.pg, log)
		}
	})
	brokers := cfg.Brokers
	if len(brokers) == 0 {
		if s.kafka, err = kafka.Start(kafka.Config{Dir: filepath.Join(cfg.Dir, "kafka"), Addr: cfg.KafkaAddr, Logger: log}); err == nil {
			brokers = s.kafka.Brokers()
		}
	}
	if err == nil {
		s.registry, err = registry.Start(registry.Config{File: filepath.Join(cfg.Dir, "registry.json"), Addr: cfg.RegistryAddr, Compatibility: schemas.Policy, Logger: log})
	}
	if err == nil {
		s.card, err = psp.Start(ctx, psp.Config{Kind: psp.KindCard, Addr: cfg.CardPSPAddr, File: filepath.Join(cfg.Dir, "psp", "card.jsonl"),
			Latency: cfg.PSPLatency, FailureRate: cfg.PSPFailureRate, Seed: 1, Logger: log})
	}
	if err == nil {
		s.bank, err = psp.Start(ctx, psp.Config{Kind: psp.KindSEPA, Addr: cfg.SepaBankAddr, File: filepath.Join(cfg.Dir, "psp", "sepa.jsonl"),
			Latency: cfg.PSPLatency, FailureRate: cfg.PSPFailureRate, Seed: 2, Logger: log})
	}
	if err == nil {
		s.smtp, err = smtpd.Start(ctx, smtpd.Config{Addr: cfg.SMTPAddr, Dir: mailDir, Logger: log})
	}
	wg.Wait()
	if err = errors.Join(err, pgErr, mongoErr); err != nil {
		return nil, err
	}
	s.Endpoints = Endpoints{Brokers: brokers, RegistryURL: s.registry.URL(), MongoURI: s.mongo.URI(), PostgresURL: s.pg.URL(),
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

// MongoDatabase is the database of the PostgreSQL cluster that holds the
// MongoDB-compatible server's documents.
const MongoDatabase = "ferretdb"

// MongoRole is the PostgreSQL role that owns MongoDatabase, as which
// FerretDB connects: the MongoDB stand-in's password is that role's, which
// opens the read models' database only, not the write side's.
const MongoRole = "ferret"

// startMongo starts FerretDB on the PostgreSQL backend in pg's database
// MongoDatabase: its look-ups are index-served (see internal/devinfra/embedded/ferret).
// A data directory whose read models an older shop dev wrote with the SQLite
// backend (<dir>/mongo/*.sqlite) keeps that backend: its projectors'
// committed offsets point past what an empty store would need.
func startMongo(ctx context.Context, cfg Config, pg *postgres.Server, log *slog.Logger) (*ferret.Server, error) {
	sqliteDir := filepath.Join(cfg.Dir, "mongo")
	if old, _ := filepath.Glob(filepath.Join(sqliteDir, "*.sqlite")); len(old) > 0 {
		log.Warn("the read models are on FerretDB's SQLite backend, whose look-ups scan every document; start from a fresh --data-dir (or delete this directory and rebuild the projections from the log) to move them to PostgreSQL", "dir", sqliteDir)
		return ferret.Start(ctx, ferret.Config{Dir: sqliteDir, Addr: cfg.MongoAddr, Logger: log})
	}
	u, err := pg.OwnDatabase(ctx, MongoDatabase, MongoRole)
	if err != nil {
		return nil, err
	}
	return ferret.Start(ctx, ferret.Config{PostgreSQLURL: u, Addr: cfg.MongoAddr, Logger: log})
}

// Server names of an [AddrError].
const (
	ServerKafka    = "kafka"
	ServerRegistry = "registry"
	ServerMongo    = "mongo"
	ServerPostgres = "postgres"
	ServerCardPSP  = "card-psp"
	ServerSepaBank = "sepa-bank"
	ServerSMTP     = "smtp"
)

// AddrError is a fixed address of the stack that cannot be listened on.
type AddrError struct {
	Server string // which: ServerKafka, ServerRegistry, …
	Addr   string // as configured; for PostgreSQL, 127.0.0.1:<port>
	Err    error  // the listen error (errors.Is syscall.EADDRINUSE when taken)
}

func (e *AddrError) Error() string {
	return fmt.Sprintf("%s address %s: %s", e.Server, e.Addr, e.Reason())
}

func (e *AddrError) Unwrap() error { return e.Err }

// InUse is whether another process listens on the address.
func (e *AddrError) InUse() bool { return errors.Is(e.Err, syscall.EADDRINUSE) }

// Reason is the cause alone: "address already in use", or the listen error.
func (e *AddrError) Reason() string {
	if e.InUse() {
		return "address already in use"
	}
	var op *net.OpError
	if errors.As(e.Err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return e.Err.Error()
}

// CheckAddrs listens on every address of cfg that names a port (not 0)
// and closes it again, returning an [*AddrError] for the first it cannot
// have (Kafka's only when the broker is embedded): cheap, so a taken port fails at once instead of after PostgreSQL
// and FerretDB started. PostgreSQL's port held by a server left running on
// cfg.Dir (its postmaster.pid names that port) is not an error: Start
// shuts that server down first.
func CheckAddrs(cfg Config) error {
	pgAddr, kafkaAddr := "", cfg.KafkaAddr
	if len(cfg.Brokers) > 0 {
		kafkaAddr = "" // not started
	}
	if cfg.PostgresPort != 0 {
		pgAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.PostgresPort))
	}
	for _, a := range []struct{ server, addr string }{
		{ServerKafka, kafkaAddr}, {ServerRegistry, cfg.RegistryAddr}, {ServerMongo, cfg.MongoAddr},
		{ServerPostgres, pgAddr}, {ServerCardPSP, cfg.CardPSPAddr}, {ServerSepaBank, cfg.SepaBankAddr}, {ServerSMTP, cfg.SMTPAddr},
	} {
		if a.addr == "" {
			continue
		}
		_, port, err := net.SplitHostPort(a.addr)
		if err != nil {
			return &AddrError{Server: a.server, Addr: a.addr, Err: err}
		}
		if port == "0" {
			continue
		}
		ln, err := net.Listen("tcp", a.addr)
		if err == nil {
			ln.Close()
			continue
		}
		e := &AddrError{Server: a.server, Addr: a.addr, Err: err}
		if a.server == ServerPostgres && e.InUse() && stalePostgresOn(cfg.Dir, cfg.PostgresPort) {
			continue
		}
		return e
	}
	return nil
}

// stalePostgresOn tells whether the PostgreSQL cluster under dir says it
// runs on port: its postmaster.pid (left by a server whose parent died) has
// port as its fourth line.
func stalePostgresOn(dir string, port int) bool {
	b, err := os.ReadFile(filepath.Join(dir, "postgres", "pgdata", "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	return len(lines) > 3 && strings.TrimSpace(lines[3]) == strconv.Itoa(port)
}

// WriteEndpoints records where a running stack listens, in a file only
// its owner reads (mode 0600: the PostgreSQL URL holds the password).
func WriteEndpoints(dir string, e Endpoints) error {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	// The PostgreSQL URL carries the cluster's password: the owner only.
	tmp := filepath.Join(dir, endpointsFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, endpointsFile))
}

// ReadEndpoints finds a running `shop infra` or `shop dev` by its data
// directory.
func ReadEndpoints(dir string) (Endpoints, error) {
	var e Endpoints
	b, err := os.ReadFile(filepath.Join(dir, endpointsFile))
	if errors.Is(err, os.ErrNotExist) {
		return e, fmt.Errorf("no running `shop infra` or `shop dev` found in --data-dir %s (no %s)", dir, endpointsFile)
	}
	if err != nil {
		return e, err
	}
	return e, json.Unmarshal(b, &e)
}
