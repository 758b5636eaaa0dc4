package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"shopstream/internal/app"
	"shopstream/internal/devshop"
	"shopstream/internal/devstack"
)

func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("dev", stderr)
	dataDir := fs.String("data-dir", ".shop", "directory of all embedded data (Kafka log, registry, MongoDB, PostgreSQL); kept across restarts")
	httpAddr := fs.String("http", "127.0.0.1:8080", "address of the HTTP gateway")
	kafkaAddr := fs.String("kafka-addr", "127.0.0.1:0", "address of the embedded Kafka broker (port 0: a free port)")
	registryAddr := fs.String("registry-addr", "127.0.0.1:0", "address of the embedded schema registry")
	mongoAddr := fs.String("mongo-addr", "127.0.0.1:0", "address of the embedded MongoDB-compatible server (FerretDB)")
	pgPort := fs.Int("postgres-port", 0, "port of the embedded PostgreSQL (0: a free port)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	shop := addShopFlags(fs)
	psp := addPSPFlags(fs)
	if err := parse(fs, args, getenv); err != nil {
		return err
	}
	if err := shop.check(); err != nil {
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
	stack, err := devstack.Start(ctx, psp.apply(devstack.Config{
		Dir: *dataDir, KafkaAddr: *kafkaAddr, RegistryAddr: *registryAddr, MongoAddr: *mongoAddr, PostgresPort: *pgPort, Logger: log,
	}))
	if err != nil {
		return err
	}
	defer stopStack(ctx, stack, log, stdout)
	e := stack.Endpoints
	cfg := devshop.Config(e, *httpAddr, log)
	cfg.Getenv = getenv
	cfg.OnReady = func(addr string) {
		e.HTTP = "http://" + addr
		if err := devstack.WriteEndpoints(*dataDir, e); err != nil {
			log.Error("write endpoints", "err", err)
		}
		fmt.Fprintf(stdout, "shop dev ready in %s\n  http:      %s\n  kafka:     %v\n  registry:  %s\n  mongodb:   %s\n  postgres:  %s\n",
			time.Since(began).Round(time.Millisecond), e.HTTP, e.Brokers, e.RegistryURL, e.MongoURI, mask("postgres", e.PostgresURL))
	}
	return app.Run(ctx, shop.apply(cfg))
}

// stopStack stops the embedded infrastructure, within 30 s even when ctx
// has ended.
func stopStack(ctx context.Context, stack *devstack.Stack, log *slog.Logger, stdout io.Writer) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := stack.Stop(sctx); err != nil {
		log.Error("stopping the embedded infrastructure", "err", err)
	}
	fmt.Fprintln(stdout, "stopped")
}
