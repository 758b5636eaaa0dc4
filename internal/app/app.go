// Package app wires the shop's components to their infrastructure and runs
// them: the same code serves `shop dev` (every component, embedded
// infrastructure) and `shop run --components=…` (chosen components against
// real Kafka, schema registry, MongoDB and PostgreSQL). Run returns when its
// context ends, after every component stopped; a component that fails
// stops the others and its error is returned.
//
// Every instance, whatever its components, serves GET /metrics (its own
// Prometheus registry: franz-go client metrics of every Kafka client it
// builds, the lag and dead-letter gauges, and those of the components it
// runs), GET /livez (the process serves), GET /readyz (the dependencies
// its components need answer, see Needs) and GET /healthz (an alias of
// /readyz) on Config.HTTPAddr. Tracing follows the standard
// OTEL_* environment (package tracing); traceparent propagates from the
// gateway through every processor whether spans are exported or not.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kslog"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"shopstream/internal/edge/gateway"
	"shopstream/internal/edge/stockwatch"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/docstore"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/idempotency"
	"shopstream/internal/platform/lag"
	"shopstream/internal/platform/metrics"
	"shopstream/internal/platform/outbox"
	"shopstream/internal/platform/pgdb"
	"shopstream/internal/platform/tracing"
	"shopstream/processors/charging"
	"shopstream/processors/charging/pspclient"
	"shopstream/processors/consumer"
	"shopstream/processors/email"
	"shopstream/processors/email/mailer"
	"shopstream/processors/email/quota"
	"shopstream/processors/invoicing"
	"shopstream/processors/saga"
	"shopstream/processors/stockfeed"
	"shopstream/producers/billing"
	"shopstream/producers/carts"
	"shopstream/producers/catalog"
	"shopstream/producers/customers"
	"shopstream/producers/inventory"
	"shopstream/producers/notifications"
	"shopstream/producers/orders"
	"shopstream/producers/payments"
	"shopstream/producers/reviews"
	"shopstream/projectors/orderviews"
	"shopstream/projectors/products"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// Component names, for --components.
const (
	Gateway           = "gateway"
	OutboxRelay       = "outbox-relay"
	ProjectorProducts = "projector-products"
	ProjectorOrders   = "projector-orders"
	StockFeed         = "stockfeed"
	Saga              = "saga"
	PaymentsCard      = "payments-card"
	PaymentsSepa      = "payments-sepa"
	Billing           = "billing"
	Email             = "email"
)

// Components lists every component, in start order.
func Components() []string {
	return []string{OutboxRelay, StockFeed, Saga, PaymentsCard, PaymentsSepa, Billing, Email, ProjectorProducts, ProjectorOrders, Gateway}
}

// ParseComponents reads a comma-separated list ("all" for every one).
func ParseComponents(s string) ([]string, error) {
	if s == "" || s == "all" {
		return Components(), nil
	}
	var out []string
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		if !slices.Contains(Components(), c) {
			return nil, fmt.Errorf("unknown component %q (known: %s)", c, strings.Join(Components(), ", "))
		}
		out = append(out, c)
	}
	return out, nil
}

// Config is what Run needs.
type Config struct {
	Brokers     []string
	RegistryURL string
	MongoURI    string
	MongoDB     string
	PostgresURL string
	// HTTPAddr is where every instance serves GET /metrics (Prometheus),
	// /livez, /readyz and /healthz; with the gateway component, the
	// shop's API too.
	HTTPAddr   string
	Components []string
	// CardPSPURL and SepaBankURL are the payment providers' APIs.
	CardPSPURL  string
	SepaBankURL string
	// PaymentTimeout and SepaTimeout are how long the saga waits for a
	// card payment's and a SEPA transfer's outcome before it cancels the
	// order (payment_timeout); 0 means saga.DefaultPaymentTimeout and
	// saga.DefaultSepaTimeout.
	PaymentTimeout time.Duration
	SepaTimeout    time.Duration
	// SMTPAddr is the mail relay; MailFrom the sender of the shop's emails.
	SMTPAddr string
	MailFrom string
	// EmailRate is the email provider's quota, in emails per second for
	// the whole email consumer group. 0 means DefaultEmailRate.
	EmailRate float64
	// MaxInFlight bounds the commands the gateway runs at once; more get
	// 429 at once. 0 means DefaultMaxInFlight.
	MaxInFlight int
	// HTTPLimits are the HTTP server's deadlines (queries, commands,
	// request bodies) and its cap on event streams; zero fields take the
	// gateway's defaults.
	HTTPLimits gateway.Limits
	// Replication is the replication factor of topics it creates; -1 for
	// the broker default.
	Replication int16
	Logger      *slog.Logger
	// DevEndpoints, set by `shop dev`, is what GET /dev/endpoints answers:
	// the embedded infrastructure, for tools such as `shop replay --http`.
	DevEndpoints any
	// OnReady, if set, is called once every component runs, with the
	// address HTTP listens on.
	OnReady func(httpAddr string)
	// Tracing is the tracer provider of every component; nil builds one
	// from the OTEL_* environment (tracing.FromEnv, read with Getenv),
	// which Run shuts down as it returns.
	Tracing trace.TracerProvider
	// Getenv reads the environment for Tracing; nil is os.Getenv.
	Getenv func(string) string
}

// Run starts the configured components and blocks until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	has := func(c string) bool { return slices.Contains(cfg.Components, c) }

	cat, err := schemas.Load()
	if err != nil {
		return err
	}
	reg, err := sr.NewClient(sr.URLs(cfg.RegistryURL))
	if err != nil {
		return fmt.Errorf("schema registry: %w", err)
	}
	serde := eventlog.NewSerde(reg, cat)
	if err := serde.RegisterAll(ctx); err != nil {
		return err
	}
	tp := cfg.Tracing
	if tp == nil {
		getenv := cfg.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		p, err := tracing.FromEnv(ctx, getenv, attribute.String("shop.components", strings.Join(cfg.Components, ",")))
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := p.Shutdown(sctx); err != nil {
				log.Warn("tracing: spans not flushed", "err", err)
			}
		}()
		tp = p
		log.Info("tracing", "exporting", p.Enabled)
	}
	// promReg is this instance's registry, served on GET /metrics.
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	kopts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.WithLogger(kslog.New(log.With("component", "kafka-client")))}
	// kclient builds a Kafka client whose franz-go metrics (kprom, under
	// "shop_", labelled client=name) this instance serves.
	kclient := func(name string, opts ...kgo.Opt) (*kgo.Client, error) {
		m := kprom.NewMetrics("shop", kprom.Registerer(promReg), kprom.WithStaticLabel(prometheus.Labels{"client": name}))
		return kgo.NewClient(slices.Concat(kopts, opts, []kgo.Opt{kgo.WithHooks(m)})...)
	}
	admin, err := kclient("admin")
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer admin.Close()
	if err := eventlog.EnsureTopics(ctx, kadm.NewClient(admin), cfg.Replication); err != nil {
		return err
	}

	pool, err := pgdb.Connect(ctx, cfg.PostgresURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := pgdb.Migrate(ctx, pool, Migrations()); err != nil {
		return err
	}
	mc, err := mongo.Connect(options.Client().ApplyURI(cfg.MongoURI))
	if err != nil {
		return fmt.Errorf("mongodb: %w", err)
	}
	defer mc.Disconnect(context.WithoutCancel(ctx)) //nolint:errcheck // best effort at exit
	db := mc.Database(cfg.MongoDB)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	alive := map[string]*atomic.Bool{}
	start := func(name string, run func(context.Context) error) {
		flag := &atomic.Bool{}
		flag.Store(true)
		alive[name] = flag
		wg.Go(func() {
			defer flag.Store(false)
			if err := run(ctx); err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("%s: %w", name, err))
			}
		})
	}

	if has(OutboxRelay) {
		prod, err := kclient(OutboxRelay, kgo.ProducerLinger(2*time.Millisecond))
		if err != nil {
			return err
		}
		defer prod.Close()
		relay := outbox.NewRelay(pool, prod, outbox.RelayConfig{Logger: log})
		start(OutboxRelay, relay.Run)
		promReg.MustRegister(metrics.Outbox(pool, 0, log))
	}
	// group runs a consumer group (a processor's or a projector's) as a
	// component, with a client of its own.
	group := func(name string, g interface {
		ClientOpts() []kgo.Opt
		Run(context.Context, *kgo.Client) error
	}) error {
		cl, err := kclient(name, g.ClientOpts()...)
		if err != nil {
			return err
		}
		start(name, func(ctx context.Context) error { defer cl.Close(); return g.Run(ctx, cl) })
		return nil
	}
	// known are the consumer groups whose lag GET /lag shows even when
	// they are down: the projections, and the processors run here.
	known := map[string][]string{
		products.Projection().Group():   products.Projection().Topics,
		orderviews.Projection().Group(): orderviews.Projection().Topics,
	}
	consume := func(name string, cfg consumer.Config) error {
		known[cfg.Group] = cfg.Topics
		if cfg.Logger == nil {
			cfg.Logger = log
		}
		cfg.Tracing = tp
		return group(name, consumer.New(cfg))
	}
	svc := newServices(pool, serde)
	if has(StockFeed) {
		if err := consume(StockFeed, stockfeed.Config(svc.inventory, serde)); err != nil {
			return err
		}
	}
	if has(Saga) {
		// The saga's steps hold a connection of their own while their
		// commands take others: from a pool of their own, so that they
		// never wait on the pool they hold.
		own, err := pgdb.Connect(ctx, cfg.PostgresURL)
		if err != nil {
			return err
		}
		defer own.Close()
		// A charge that comes after its order's payment timed out is
		// refunded through the provider that made it.
		refunders := map[string]saga.Refunder{}
		for method, url := range map[string]string{orders.Card: cfg.CardPSPURL, orders.Sepa: cfg.SepaBankURL} {
			if url == "" {
				continue
			}
			c, err := pspclient.New(pspclient.Config{BaseURL: url, Logger: log, Breaker: pspclient.BreakerConfig{Name: "saga-refund-" + method}})
			if err != nil {
				return fmt.Errorf("payment provider %s: %w", url, err)
			}
			refunders[method] = c
		}
		sg := saga.New(own, pool, svc.orders, svc.inventory, svc.payments, refunders,
			saga.Timeouts{Card: cfg.PaymentTimeout, Sepa: cfg.SepaTimeout}, log)
		if err := consume(Saga, sg.Config(serde)); err != nil {
			return err
		}
		// Every saga instance runs a scheduler: they share the due
		// deadlines, each fired once (see saga.Scheduler).
		start(Saga+"-scheduler", sg.Scheduler(0).Run)
	}
	if has(PaymentsCard) || has(PaymentsSepa) {
		var providers [2]*pspclient.Client
		targets := [2]string{"card", "sepa"}
		for i, url := range []string{cfg.CardPSPURL, cfg.SepaBankURL} {
			if providers[i], err = pspclient.New(pspclient.Config{BaseURL: url, Logger: log, Breaker: pspclient.BreakerConfig{Name: targets[i]}}); err != nil {
				return fmt.Errorf("payment provider %s: %w", url, err)
			}
		}
		p := charging.New(svc.payments, providers[0], providers[1], log)
		for i, c := range []string{PaymentsCard, PaymentsSepa} {
			if has(c) {
				promReg.MustRegister(breakerGauge(targets[i], providers[i]))
			}
		}
		if has(PaymentsCard) {
			if err := consume(PaymentsCard, p.CardConfig(serde)); err != nil {
				return err
			}
		}
		if has(PaymentsSepa) {
			if err := consume(PaymentsSepa, p.SepaConfig(serde)); err != nil {
				return err
			}
		}
	}
	if has(Billing) {
		b := invoicing.New(invoicing.Deps{Pool: pool, Billing: svc.billing, Notifications: svc.notifications,
			Orders: svc.orders, Customers: svc.customers, Catalog: svc.catalog, Logger: log})
		if err := consume(Billing, b.Config(serde)); err != nil {
			return err
		}
	}
	if has(Email) {
		from := cfg.MailFrom
		if from == "" {
			from = DefaultMailFrom
		}
		m, err := mailer.New(mailer.Config{Addr: cfg.SMTPAddr, From: from})
		if err != nil {
			return fmt.Errorf("--smtp-addr %s: %w", cfg.SMTPAddr, err)
		}
		rate := cfg.EmailRate
		if rate == 0 {
			rate = DefaultEmailRate
		}
		pacer, err := quota.New(quota.Config{Rate: rate, Partitions: schemas.DefaultPartitions})
		if err != nil {
			return fmt.Errorf("--email-rate %v: %w", rate, err)
		}
		sent := prometheus.NewCounter(prometheus.CounterOpts{Name: "shop_email_sent_total", Help: "Emails the SMTP relay accepted from this instance."})
		promReg.MustRegister(sent,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_email_quota_per_second",
				Help: "This instance's share of the email quota: the group's quota times the share of the email partitions it owns."}, pacer.Share),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_email_group_quota_per_second",
				Help: "The email provider's quota for the whole email consumer group (--email-rate)."}, pacer.Rate))
		sender := email.New(email.Deps{Notifications: svc.notifications, Billing: svc.billing, Mailer: m, Pacer: pacer, Logger: log, Sent: sent})
		if err := consume(Email, sender.Config(serde)); err != nil {
			return err
		}
	}
	store := docstore.New(db)
	if has(ProjectorProducts) {
		r := runner.New(products.Projection(), serde, store, log).WithTracing(tp)
		promReg.MustRegister(checkpointGauge(products.Projection().Name, r.Checkpoint))
		if err := group(ProjectorProducts, r); err != nil {
			return err
		}
	}
	if has(ProjectorOrders) {
		r := runner.New(orderviews.Projection(), serde, store, log).WithTracing(tp)
		promReg.MustRegister(checkpointGauge(orderviews.Projection().Name, r.Checkpoint))
		if err := group(ProjectorOrders, r); err != nil {
			return err
		}
	}
	var dlqs []string
	for _, t := range schemas.Topics() {
		dlqs = append(dlqs, eventlog.DeadLetterTopic(t.Name))
	}
	promReg.MustRegister(
		metrics.Lag(kadm.NewClient(admin), known, 0, log),
		metrics.DeadLetters(kadm.NewClient(admin), dlqs, 0, log))
	checks := readinessChecks(cfg.Components, infraChecks(admin, reg, mc, pool, cfg.SMTPAddr), alive)
	// Every instance serves GET /metrics, /livez, /readyz and /healthz
	// (the alias of /readyz); with the gateway, the gateway serves the
	// rest, its own /healthz included.
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(promReg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	mux.Handle("GET /livez", gateway.Livez())
	mux.Handle("GET /readyz", gateway.Readyz(checks))
	server := "http"
	if has(Gateway) {
		hub := stockwatch.New(serde, log)
		if err := group("stockwatch", hub); err != nil {
			return err
		}
		gw := gateway.New(gateway.Deps{
			Commands: commandBus(svc, pool, cfg, promReg), Products: products.NewReader(db), Orders: orderviews.NewReader(db),
			Stock: hub, Checks: checks, Logger: log, DevEndpoints: cfg.DevEndpoints,
			Lag:     func(ctx context.Context) ([]lag.Group, error) { return lag.Measure(ctx, kadm.NewClient(admin), known) },
			Metrics: promReg, Tracing: tp, AsyncAPI: AsyncAPI, Limits: cfg.HTTPLimits,
		})
		mux.Handle("/", gw)
		server = Gateway
	} else {
		mux.Handle("GET /healthz", gateway.Healthz(checks))
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen --http %s: %w", cfg.HTTPAddr, err)
	}
	httpAddr := ln.Addr().String()
	srv := gateway.NewServer(gateway.WithProblems(mux), cfg.HTTPLimits)
	start(server, func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	log.Info("components running", "components", cfg.Components, "http", httpAddr)
	if cfg.OnReady != nil {
		cfg.OnReady(httpAddr)
	}
	<-ctx.Done()
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Migrations are every context's migrations, in order.
func Migrations() []pgdb.Migration {
	return slices.Concat(outbox.Migrations(), idempotency.Migrations(), customers.Migrations(), catalog.Migrations(),
		inventory.Migrations(), carts.Migrations(), orders.Migrations(), payments.Migrations(),
		billing.Migrations(), notifications.Migrations(), reviews.Migrations(), saga.Migrations())
}

// Defaults of the email sender.
const (
	DefaultEmailRate = 10
	DefaultMailFrom  = "shopstream <shop@shopstream.dev>"
)

// DefaultMaxInFlight is how many commands one instance runs at once before
// it sheds load with 429s.
const DefaultMaxInFlight = 64

// commandBus wires every write context's handlers behind the middlewares,
// outermost first: logging, metrics, validation (no I/O for a malformed
// command), load shedding, idempotency, retry of version conflicts.
func commandBus(svc *services, pool *pgxpool.Pool, cfg Config, reg prometheus.Registerer) *command.Bus {
	maxInFlight := cfg.MaxInFlight
	if maxInFlight <= 0 {
		maxInFlight = DefaultMaxInFlight
	}
	bus := command.NewBus(
		command.Logging(cfg.Logger.With("component", "commands")),
		command.Metrics(reg),
		command.Validation(),
		command.Shed(maxInFlight),
		idempotency.Middleware(pool),
		command.Retry(5),
	)
	for _, s := range []interface{ Register(*command.Bus) }{svc.catalog, svc.customers, svc.carts, svc.orders, svc.reviews} {
		s.Register(bus)
	}
	return bus
}

// services are the write contexts, wired to each other.
type services struct {
	catalog   *catalog.Service
	customers *customers.Service
	carts     *carts.Service
	orders    *orders.Service
	inventory *inventory.Service
	payments  *payments.Service
	reviews   *reviews.Service
	billing   *billing.Service
	// notifications is the emails' write side.
	notifications *notifications.Service
}

func newServices(pool *pgxpool.Pool, serde *eventlog.Serde) *services {
	s := &services{
		catalog: catalog.NewService(pool, serde), customers: customers.NewService(pool, serde),
		inventory: inventory.NewService(pool, serde), payments: payments.NewService(pool, serde),
		billing: billing.NewService(pool, serde), notifications: notifications.NewService(pool, serde),
	}
	s.carts = carts.NewService(pool, serde, s.catalog.Exists, s.customers.Exists)
	s.reviews = reviews.NewService(pool, serde, s.catalog)
	s.orders = orders.NewService(pool, serde, orders.Deps{
		CustomerExists: s.customers.Exists,
		Price: func(ctx context.Context, id string) (int64, bool, error) {
			p, found, err := s.catalog.Product(ctx, id)
			return p.PriceCents, found, err
		},
		Available: s.inventory.Available,
		Carts:     s.carts,
	})
	return s
}

// DepSMTP names the mail relay in readiness checks (the other
// dependencies are named as in a 503 problem: gateway.DepPostgres, …).
const DepSMTP = "smtp"

// Needs lists the dependencies component cannot do its work without, in
// the order /readyz checks them: an instance is ready when those of its
// components answer (GET /readyz), whatever the others do, so that an
// outage of MongoDB takes no processor out of service and restarts
// nothing. What a component reaches only through a circuit breaker and
// deadlines that compensate (the payment providers) is not in it, nor is
// what it merely reports (the gateway's /lag and event streams read
// Kafka, but it accepts writes and serves reads without it: the outbox
// holds the events).
func Needs(component string) []string {
	switch component {
	case Gateway:
		return []string{gateway.DepPostgres, gateway.DepMongo}
	case OutboxRelay:
		return []string{gateway.DepPostgres, gateway.DepKafka}
	case ProjectorProducts, ProjectorOrders:
		return []string{gateway.DepMongo, gateway.DepKafka, gateway.DepRegistry}
	case StockFeed, Saga, PaymentsCard, PaymentsSepa, Billing:
		return []string{gateway.DepPostgres, gateway.DepKafka, gateway.DepRegistry}
	case Email:
		return []string{gateway.DepPostgres, gateway.DepKafka, gateway.DepRegistry, DepSMTP}
	}
	return nil
}

// readinessChecks are what GET /readyz runs: the dependencies the
// components need (Needs, each once, in a fixed order), then whether
// each component still runs.
func readinessChecks(components []string, infra map[string]gateway.Check, alive map[string]*atomic.Bool) []gateway.Check {
	need := map[string]bool{}
	for _, c := range components {
		for _, d := range Needs(c) {
			need[d] = true
		}
	}
	var checks []gateway.Check
	for _, d := range []string{gateway.DepPostgres, gateway.DepMongo, gateway.DepKafka, gateway.DepRegistry, DepSMTP} {
		if need[d] {
			checks = append(checks, infra[d])
		}
	}
	for _, name := range components {
		if flag := alive[name]; flag != nil {
			checks = append(checks, gateway.Check{Name: name, Check: func(context.Context) error {
				if !flag.Load() {
					return errors.New("stopped")
				}
				return nil
			}})
		}
	}
	return checks
}

// infraChecks ping each dependency, by name: a round trip that needs the
// server to answer, not just a pooled connection.
func infraChecks(k *kgo.Client, reg *sr.Client, mc *mongo.Client, pool *pgxpool.Pool, smtpAddr string) map[string]gateway.Check {
	checks := []gateway.Check{
		{Name: gateway.DepKafka, Check: k.Ping},
		{Name: gateway.DepRegistry, Check: func(ctx context.Context) error { _, err := reg.Subjects(ctx); return err }},
		{Name: gateway.DepMongo, Check: func(ctx context.Context) error { return mc.Ping(ctx, nil) }},
		{Name: gateway.DepPostgres, Check: pool.Ping},
		// The relay answers a TCP connection: no SMTP session, so no
		// message and nothing for a provider to count.
		{Name: DepSMTP, Check: func(ctx context.Context) error {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", smtpAddr)
			if err != nil {
				return err
			}
			return c.Close()
		}},
	}
	m := map[string]gateway.Check{}
	for _, c := range checks {
		m[c.Name] = c
	}
	return m
}

// breakerGauge is shop_circuit_breaker_state{target}: 0 closed, 1
// half-open, 2 open.
func breakerGauge(target string, c *pspclient.Client) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_circuit_breaker_state",
		Help:        "State of the circuit breaker around a payment provider: 0 closed, 1 half-open, 2 open.",
		ConstLabels: prometheus.Labels{"target": target}}, func() float64 {
		switch c.State() {
		case gobreaker.StateHalfOpen:
			return 1
		case gobreaker.StateOpen:
			return 2
		default:
			return 0
		}
	})
}

// checkpointGauge is shop_projector_checkpoint_age_seconds{projection}:
// the seconds since the projector's checkpoint (runner.Checkpoint: its
// last committed batch, or the last time it found itself caught up), 0
// before it runs.
func checkpointGauge(projection string, checkpoint func() time.Time) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_projector_checkpoint_age_seconds",
		Help:        "Seconds since the projector last committed a batch or last found itself caught up with its topics.",
		ConstLabels: prometheus.Labels{"projection": projection}}, func() float64 {
		at := checkpoint()
		if at.IsZero() {
			return 0
		}
		return time.Since(at).Seconds()
	})
}
