package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"shopstream/internal/app"
	"shopstream/internal/devinfra/devshop"
	"shopstream/internal/devinfra/devstack"
)

func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("dev", stderr)
	dataDir := fs.String("data-dir", ".shop", dataDirUsage+": all its data (Kafka log, registry, MongoDB, PostgreSQL, mail) and endpoints.json, kept across restarts")
	httpAddr := fs.String("http", "127.0.0.1:8080", "address of the HTTP gateway")
	adminAddr := fs.String("admin-http", "127.0.0.1:9464", adminHTTPUsage)
	// Fixed conventional ports by default, so that what points at them
	// outside the shop keeps working across restarts; port 0 picks a
	// free one at each start.
	addrs := addStackFlags(fs) // the same as `shop infra`'s
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
	if err := checkHTTPAddr(*httpAddr); err != nil {
		return err
	}
	printConfig(stdout, fs)
	began := time.Now()
	fmt.Fprintf(stdout, "starting embedded infrastructure in %s …\n", *dataDir)
	sc := addrs.config(*dataDir)
	sc.Logger = log
	stack, err := devstack.Start(ctx, psp.apply(sc))
	if err != nil {
		return devAddrError(err)
	}
	defer stopStack(ctx, stack, log, stdout)
	e := stack.Endpoints
	cfg := devshop.Config(e, stack.Secrets, *httpAddr, log)
	cfg.Getenv = getenv
	cfg.AdminAddr = *adminAddr
	cfg.OnReady = func(addr, admin string) {
		e.HTTP, e.Admin = "http://"+addr, "http://"+admin
		if err := devstack.WriteEndpoints(*dataDir, e); err != nil {
			log.Error("write endpoints", "err", err)
		}
		s := stack.Secrets
		demo := "demo customer: " + s.DemoEmail + " / " + s.DemoPassword + " (POST /auth/token for a token)"
		if err := signUpDemo(ctx, e.HTTP, s); err != nil {
			demo = "demo customer: not signed up: " + err.Error()
		}
		fmt.Fprintf(stdout, "shop dev ready in %s\n  http:      %s\n  kafka:     %v\n  registry:  %s\n  mongodb:   %s\n  postgres:  %s\n"+
			"  card psp:  %s\n  sepa bank: %s\n  smtp:      %s (mail in %s)\n  admin:     %s (metrics, lag, endpoints, pprof)\n"+
			"  console:   %s/console (the pipeline live, in a browser; log in with the staff key)\n"+
			"  staff key: %s (header X-API-Key; kept in %s)\n  %s\n",
			time.Since(began).Round(time.Millisecond), e.HTTP, e.Brokers, e.RegistryURL, mask("mongo", e.MongoURI), mask("postgres", e.PostgresURL),
			e.CardPSPURL, e.SepaBankURL, e.SMTPAddr, e.MailDir, e.Admin, e.Admin, s.StaffKey, filepath.Join(*dataDir, "secrets.json"), demo)
	}
	return app.Run(ctx, shop.apply(cfg))
}

// devFlags names the flag of each server of the stack, and what else may
// be listening on its default port.
var devFlags = map[string]struct{ flag, zero, other string }{
	"http":                  {"http", "127.0.0.1:0", "another shop?"},
	devstack.ServerKafka:    {"kafka-addr", "127.0.0.1:0", "another Kafka?"},
	devstack.ServerRegistry: {"registry-addr", "127.0.0.1:0", "another schema registry?"},
	devstack.ServerMongo:    {"mongo-addr", "127.0.0.1:0", "another MongoDB?"},
	devstack.ServerPostgres: {"postgres-port", "0", "another PostgreSQL?"},
	devstack.ServerCardPSP:  {"card-psp-addr", "127.0.0.1:0", "another shop dev?"},
	devstack.ServerSepaBank: {"sepa-bank-addr", "127.0.0.1:0", "another shop dev?"},
	devstack.ServerSMTP:     {"smtp-addr", "127.0.0.1:0", "another SMTP server such as Mailpit or MailHog?"},
}

// devAddrError names the flag of an address the stack cannot listen on,
// e.g. "--kafka-addr 127.0.0.1:9092: address already in use (another
// Kafka? pass --kafka-addr 127.0.0.1:0 for a free port)"; other errors
// as they are.
func devAddrError(err error) error {
	var ae *devstack.AddrError
	if !errors.As(err, &ae) {
		return err
	}
	f, ok := devFlags[ae.Server]
	if !ok {
		return err
	}
	value := ae.Addr
	if ae.Server == devstack.ServerPostgres {
		_, value, _ = net.SplitHostPort(ae.Addr)
	}
	if !ae.InUse() {
		return fmt.Errorf("--%s %s: %s", f.flag, value, ae.Reason())
	}
	return fmt.Errorf("--%s %s: %s (%s pass --%s %s for a free port)", f.flag, value, ae.Reason(), f.other, f.flag, f.zero)
}

// checkHTTPAddr fails at once when the gateway's fixed address is taken,
// before the embedded infrastructure starts.
func checkHTTPAddr(addr string) error {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
		return nil // a malformed address is the gateway's to report
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return devAddrError(&devstack.AddrError{Server: "http", Addr: addr, Err: err})
	}
	return ln.Close()
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

// signUpDemo signs the demo customer of secrets up at base, once: a
// restart finds the email taken (409), which is fine.
func signUpDemo(ctx context.Context, base string, s devstack.Secrets) error {
	body, _ := json.Marshal(map[string]string{"email": s.DemoEmail, "name": "Demo Customer", "password": s.DemoPassword})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/customers", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusConflict {
		return fmt.Errorf("POST /customers: %s", resp.Status)
	}
	return nil
}
