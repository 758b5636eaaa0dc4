package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"shopstream/internal/app"
	"shopstream/internal/devinfra/devstack"
)

// infraFlags are the flags that name real infrastructure.
type infraFlags struct {
	brokers     listFlag
	kafka       *kafkaSecFlags
	registryURL *string
	mongoURI    *string
	mongoDB     *string
	postgresURL *string
	cardPSPURL  *string
	sepaBankURL *string
	smtpAddr    *string
}

func addInfraFlags(fs *flag.FlagSet) *infraFlags {
	f := &infraFlags{brokers: listFlag{"127.0.0.1:9092"}}
	fs.Var(&f.brokers, "brokers", brokersUsage)
	f.kafka = addKafkaSecFlags(fs)
	f.registryURL = fs.String("registry-url", "http://127.0.0.1:8081", "schema registry URL (Confluent API)")
	f.mongoURI = fs.String("mongo-uri", "mongodb://127.0.0.1:27017/", "MongoDB URI")
	f.mongoDB = fs.String("mongo-db", "shop", "MongoDB database of the read models")
	// The defaults are where a `shop infra` (or `shop dev`) listens by default.
	f.cardPSPURL = fs.String("card-psp-url", "http://"+devstack.DefaultCardPSPAddr, "card payment provider API (POST /charges with Idempotency-Key)")
	f.sepaBankURL = fs.String("sepa-bank-url", "http://"+devstack.DefaultSepaBankAddr, "SEPA bank API (POST /charges with Idempotency-Key)")
	f.smtpAddr = fs.String("smtp-addr", "127.0.0.1:1025", "SMTP relay of the shop's emails")
	f.postgresURL = fs.String("postgres-url", "postgres://shop@127.0.0.1:5432/shop?sslmode=disable", "PostgreSQL URL of the write model")
	return f
}

func runRun(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	infra := addInfraFlags(fs)
	components := fs.String("components", "all", "components to run, comma-separated: all, or "+strings.Join(app.Components(), ", "))
	httpAddr := fs.String("http", ":8080", "HTTP address: /livez, /readyz and /healthz on every instance, the shop's API with the gateway component")
	adminAddr := fs.String("admin-http", "127.0.0.1:0", adminHTTPUsage+" (default: a free loopback port, printed when ready; deployments set one for Prometheus)")
	replication := fs.Int("replication", -1, "replication factor of topics created at start (-1: broker default)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	dataDir := fs.String("data-dir", ".shop", dataDirUsage+": its endpoints.json, when there, gives every infrastructure flag not set otherwise")
	shop := addShopFlags(fs)
	if err := parse(fs, args, getenv); err != nil {
		return err
	}
	if dir := endpointsDir(*dataDir, isSet(fs, "data-dir")); dir != "" {
		if err := setFromEndpoints(fs, dir); err != nil {
			return err
		}
	}
	if err := shop.check(); err != nil {
		return err
	}
	kafka, err := infra.kafka.security()
	if err != nil {
		return err
	}
	comps, err := app.ParseComponents(*components)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	printConfig(stdout, fs)
	return app.Run(ctx, shop.apply(app.Config{
		Brokers: infra.brokers, Kafka: kafka, RegistryURL: *infra.registryURL, MongoURI: *infra.mongoURI, MongoDB: *infra.mongoDB,
		PostgresURL: *infra.postgresURL, CardPSPURL: *infra.cardPSPURL, SepaBankURL: *infra.sepaBankURL, SMTPAddr: *infra.smtpAddr, HTTPAddr: *httpAddr, AdminAddr: *adminAddr, Components: comps, Replication: int16(*replication), Logger: log,
		Getenv: getenv,
		OnReady: func(addr, admin string) {
			addr = "http://" + addr
			fmt.Fprintf(stdout, "shop run ready: components %s, http %s, admin http://%s\n", strings.Join(comps, ","), addr, admin)
		},
	}))
}
