package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"shopstream/internal/devinfra/devstack"
)

// runInfra is `shop infra`: the embedded infrastructure of `shop dev`
// alone, with no component of the shop, for shops run as separate `shop
// run` processes. Each server listens on a fixed address (the conventional
// ports, as `shop dev`; port 0 picks a free one), Kafka is the embedded
// broker unless --brokers names a real cluster, and the addresses are
// written to <data-dir>/endpoints.json, which `shop run`, `shop migrate`,
// `shop topics`, `shop dlq`, `shop replay` and `shop loadtest --target`
// read with --data-dir. It serves until SIGINT or SIGTERM, then stops
// every server (PostgreSQL too) and removes endpoints.json.
//
// A command of its own rather than a mode of `shop dev`: `shop dev` is the
// whole shop in one process and its flags are the shop's (--http,
// --max-inflight, --email-rate, …); `shop infra` has no gateway and no
// component, so none of those would mean anything there.
func runInfra(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("infra", stderr)
	dataDir := fs.String("data-dir", ".shop", dataDirUsage+": all its data (Kafka log, registry, PostgreSQL, mail) and endpoints.json, kept across restarts")
	addrs := addStackFlags(fs)
	var kafkaBrokers listFlag
	fs.Var(&kafkaBrokers, "brokers", brokersUsage+" (default: the embedded broker at --kafka-addr)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	psp := addPSPFlags(fs)
	if err := parse(fs, args, getenv); err != nil {
		return err
	}
	if err := psp.check(); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	printConfig(stdout, fs)
	began := time.Now()
	fmt.Fprintf(stdout, "starting embedded infrastructure in %s …\n", *dataDir)
	cfg := addrs.config(*dataDir)
	cfg.Brokers, cfg.Logger = kafkaBrokers, log
	if err := devstack.CheckAddrs(cfg); err != nil {
		return devAddrError(err)
	}
	// The addresses are free, so an endpoints.json here is a stale one, of
	// a stack that was killed: gone until this one is ready, so that
	// waiting for the file (the README's recipe does) waits for this stack.
	if err := os.Remove(filepath.Join(*dataDir, "endpoints.json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	stack, err := devstack.Start(ctx, psp.apply(cfg))
	if err != nil {
		return devAddrError(err)
	}
	defer stopStack(ctx, stack, log, stdout)
	e := stack.Endpoints
	if err := devstack.WriteEndpoints(*dataDir, e); err != nil {
		return fmt.Errorf("write endpoints: %w", err)
	}
	file, err := filepath.Abs(filepath.Join(*dataDir, "endpoints.json"))
	if err != nil {
		return err
	}
	kafka := "embedded"
	if len(kafkaBrokers) > 0 {
		kafka = "external"
	}
	fmt.Fprintf(stdout, "shop infra ready in %s\n  kafka:     %s (%s)\n  registry:  %s\n  mongodb:   %s\n  postgres:  %s\n"+
		"  card psp:  %s\n  sepa bank: %s\n  smtp:      %s (mail in %s)\n  endpoints: %s\n"+
		"give --data-dir %s to shop run, migrate, topics, dlq, replay and loadtest --target to use them; Ctrl-C stops\n",
		time.Since(began).Round(time.Millisecond), strings.Join(e.Brokers, ","), kafka, e.RegistryURL, mask("mongo", e.MongoURI), mask("postgres", e.PostgresURL),
		e.CardPSPURL, e.SepaBankURL, e.SMTPAddr, e.MailDir, file, *dataDir)
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping …")
	return nil
}

// stackFlags are the addresses of the embedded servers, the same flags for
// `shop dev` and `shop infra`, with the fixed defaults of devstack.
type stackFlags struct {
	kafka, registry, mongo, card, bank, smtp *string
	postgres                                 *int
}

func addStackFlags(fs *flag.FlagSet) *stackFlags {
	return &stackFlags{
		kafka:    fs.String("kafka-addr", devstack.DefaultKafkaAddr, "address of the embedded Kafka broker, on 127.0.0.1 (port 0: a free port)"),
		registry: fs.String("registry-addr", devstack.DefaultRegistryAddr, "address of the embedded schema registry (port 0: a free port)"),
		mongo:    fs.String("mongo-addr", devstack.DefaultMongoAddr, "address of the embedded MongoDB-compatible server, FerretDB (port 0: a free port)"),
		postgres: fs.Int("postgres-port", devstack.DefaultPostgresPort, "port of the embedded PostgreSQL on 127.0.0.1 (0: a free port)"),
		card:     fs.String("card-psp-addr", devstack.DefaultCardPSPAddr, "address of the simulated card PSP (port 0: a free port)"),
		bank:     fs.String("sepa-bank-addr", devstack.DefaultSepaBankAddr, "address of the simulated SEPA bank (port 0: a free port)"),
		smtp:     fs.String("smtp-addr", devstack.DefaultSMTPAddr, "address of the embedded SMTP server, on loopback (port 0: a free port)"),
	}
}

func (f *stackFlags) config(dir string) devstack.Config {
	return devstack.Config{Dir: dir, KafkaAddr: *f.kafka, RegistryAddr: *f.registry, MongoAddr: *f.mongo, PostgresPort: *f.postgres,
		CardPSPAddr: *f.card, SepaBankAddr: *f.bank, SMTPAddr: *f.smtp}
}

// endpointFlags are the infrastructure flags of `shop run` and their values
// in an endpoints file.
func endpointFlags(e devstack.Endpoints) map[string]string {
	return map[string]string{
		"brokers": strings.Join(e.Brokers, ","), "registry-url": e.RegistryURL, "mongo-uri": e.MongoURI, "postgres-url": e.PostgresURL,
		"card-psp-url": e.CardPSPURL, "sepa-bank-url": e.SepaBankURL, "smtp-addr": e.SMTPAddr,
	}
}

// setFromEndpoints reads the endpoints file of the `shop infra` (or `shop
// dev`) running on dataDir and sets from it every infrastructure flag of fs
// that neither the command line nor its SHOP_* variable set.
func setFromEndpoints(fs *flag.FlagSet, dataDir string) error {
	e, err := devstack.ReadEndpoints(dataDir)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fill := func(values map[string]string, file string) error {
		for name, v := range values {
			if set[name] || v == "" || fs.Lookup(name) == nil {
				continue
			}
			if err := fs.Set(name, v); err != nil {
				return fmt.Errorf("--%s from %s: %w", name, filepath.Join(dataDir, file), err)
			}
		}
		return nil
	}
	if err := fill(endpointFlags(e), "endpoints.json"); err != nil {
		return err
	}
	// The credentials the infrastructure's data dir keeps (shop infra
	// made them): every `shop run` on it admits the same tokens and key.
	if s, err := devstack.ReadSecrets(dataDir); err == nil {
		return fill(map[string]string{"auth-token-secret": s.TokenSecret, "staff-keys": s.StaffKey}, "secrets.json")
	}
	return nil
}
