// Package devshop runs the whole shop in this process on an embedded stack
// (internal/devinfra/devstack), as `shop dev` does: every component, one replica per
// topic, the stack's endpoints served on GET /dev/endpoints. `shop dev`,
// `shop loadtest --embedded` and the component tests start a shop this one
// way.
package devshop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"

	"shopstream/internal/app"
	"shopstream/internal/devinfra/devstack"
)

// Config is the configuration of a whole shop on the stack at e, its
// gateway listening on httpAddr and admitting the stack's secrets, its
// admin listener on a free loopback port.
func Config(e devstack.Endpoints, secrets devstack.Secrets, httpAddr string, log *slog.Logger) app.Config {
	return app.Config{
		Auth:    app.Auth{TokenSecret: secrets.TokenSecret, StaffKeys: slices.DeleteFunc([]string{secrets.StaffKey}, func(k string) bool { return k == "" })},
		Brokers: e.Brokers, RegistryURL: e.RegistryURL, MongoURI: e.MongoURI, MongoDB: "shop",
		PostgresURL: e.PostgresURL, CardPSPURL: e.CardPSPURL, SepaBankURL: e.SepaBankURL, SMTPAddr: e.SMTPAddr,
		HTTPAddr: httpAddr, AdminAddr: "127.0.0.1:0", Components: app.Components(), Replication: 1, Logger: log,
		DevEndpoints: served(e),
	}
}

// served is what GET /dev/endpoints of the admin listener answers: e with
// the PostgreSQL password masked (endpoints.json, mode 0600, keeps it for
// the tools of the data dir's owner; no tool needs it over HTTP). The
// MongoDB URI keeps its password, which the tools that read the read
// models through --admin-target need (shop replay, shop loadtest
// --target): it is the password of a role that opens the read models'
// database only (devstack.MongoRole).
func served(e devstack.Endpoints) devstack.Endpoints {
	if u, err := url.Parse(e.PostgresURL); err == nil && u.User != nil {
		e.PostgresURL = u.Redacted()
	}
	return e
}

// Shop is a shop running in this process on its own stack.
type Shop struct {
	Stack *devstack.Stack
	URL   string // the gateway: http://host:port
	Admin string // the admin listener (metrics, lag, pprof): http://host:port

	stop context.CancelFunc
	done chan error
}

// Start starts the stack configured by sc, then the shop on it: [Config]
// on a free port, changed by edit (nil: unchanged; OnReady is Start's own).
// It returns once the gateway serves; if the shop fails first, or ctx
// ends, everything started is stopped and the error returned.
func Start(ctx context.Context, sc devstack.Config, edit func(*app.Config)) (*Shop, error) {
	log := sc.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stack, err := devstack.Start(ctx, sc)
	if err != nil {
		return nil, err
	}
	cfg := Config(stack.Endpoints, stack.Secrets, "127.0.0.1:0", log)
	if edit != nil {
		edit(&cfg)
	}
	ready := make(chan [2]string, 1)
	cfg.OnReady = func(addr, admin string) { ready <- [2]string{addr, admin} }
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &Shop{Stack: stack, stop: stop, done: make(chan error, 1)}
	go func() { s.done <- app.Run(runCtx, cfg) }()
	select {
	case addrs := <-ready:
		s.URL = "http://" + addrs[0]
		if addrs[1] != "" {
			s.Admin = "http://" + addrs[1]
		}
		return s, nil
	case err := <-s.done:
		s.done <- err
		return nil, errors.Join(fmt.Errorf("the shop stopped before it was ready: %w", err), s.Stop(context.WithoutCancel(ctx)))
	case <-ctx.Done():
		return nil, errors.Join(ctx.Err(), s.Stop(context.WithoutCancel(ctx)))
	}
}

// Stop stops the shop, then its stack, and returns the shop's error (if
// it failed) joined with the stack's. It is safe to call more than once.
func (s *Shop) Stop(ctx context.Context) error {
	s.stop()
	err := <-s.done
	s.done <- nil // a second Stop finds the shop stopped
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if err != nil {
		err = fmt.Errorf("the shop: %w", err)
	}
	if s.Stack != nil {
		err = errors.Join(err, s.Stack.Stop(ctx))
		s.Stack = nil
	}
	return err
}
