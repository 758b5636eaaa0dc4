package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"shopstream/internal/app"
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
	pspFailure := fs.Float64("psp-failure-rate", 0, "share of payments the simulated card PSP and SEPA bank decline, 0 to 1")
	pspLatency := fs.Duration("psp-latency", 50*time.Millisecond, "mean latency of the simulated payment providers")
	if err := parse(fs, args, getenv); err != nil {
		return err
	}
	if err := shop.check(); err != nil {
		return err
	}
	if *pspFailure < 0 || *pspFailure > 1 {
		return fmt.Errorf("--psp-failure-rate %v: must be between 0 and 1", *pspFailure)
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	printConfig(stdout, fs)
	began := time.Now()
	fmt.Fprintf(stdout, "starting embedded infrastructure in %s …\n", *dataDir)
	stack, err := devstack.Start(ctx, devstack.Config{
		Dir: *dataDir, KafkaAddr: *kafkaAddr, RegistryAddr: *registryAddr, MongoAddr: *mongoAddr,
		PostgresPort: *pgPort, PSPLatency: *pspLatency, PSPFailureRate: *pspFailure, Logger: log,
	})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := stack.Stop(sctx); err != nil {
			log.Error("stopping the embedded infrastructure", "err", err)
		}
		fmt.Fprintln(stdout, "stopped")
	}()
	e := stack.Endpoints
	return app.Run(ctx, shop.apply(app.Config{
		Brokers: e.Brokers, RegistryURL: e.RegistryURL, MongoURI: e.MongoURI, MongoDB: "shop",
		PostgresURL: e.PostgresURL, CardPSPURL: e.CardPSPURL, SepaBankURL: e.SepaBankURL, SMTPAddr: e.SMTPAddr, HTTPAddr: *httpAddr, Components: app.Components(), Replication: 1, Logger: log,
		DevEndpoints: e,
		OnReady: func(addr string) {
			e.HTTP = "http://" + addr
			if err := devstack.WriteEndpoints(*dataDir, e); err != nil {
				log.Error("write endpoints", "err", err)
			}
			fmt.Fprintf(stdout, "shop dev ready in %s\n  http:      %s\n  kafka:     %v\n  registry:  %s\n  mongodb:   %s\n  postgres:  %s\n",
				time.Since(began).Round(time.Millisecond), e.HTTP, e.Brokers, e.RegistryURL, e.MongoURI, mask("postgres", e.PostgresURL))
		},
	}))
}
