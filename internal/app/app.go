// Package app wires the shop's components to their infrastructure and runs
// them: the same code serves `shop dev` (every component, embedded
// infrastructure) and `shop run --components=…` (chosen components against
// real Kafka, schema registry, MongoDB and PostgreSQL). Run returns when its
// context ends, after every component stopped; a component that fails
// stops the others and its error is returned.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/plugin/kslog"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/internal/docstore"
	"shopstream/internal/eventlog"
	"shopstream/internal/gateway"
	"shopstream/internal/idempotency"
	"shopstream/internal/lag"
	"shopstream/internal/outbox"
	"shopstream/internal/pgdb"
	"shopstream/internal/stockwatch"
	billingproc "shopstream/processors/billing"
	"shopstream/processors/consumer"
	"shopstream/processors/email"
	"shopstream/processors/email/mailer"
	"shopstream/processors/email/quota"
	paymentsproc "shopstream/processors/payments"
	"shopstream/processors/payments/pspclient"
	"shopstream/processors/saga"
	"shopstream/processors/stockfeed"
	"shopstream/producers/billing"
	"shopstream/producers/carts"
	"shopstream/producers/catalog"
	"shopstream/producers/command"
	"shopstream/producers/customers"
	"shopstream/producers/inventory"
	"shopstream/producers/notifications"
	"shopstream/producers/orders"
	"shopstream/producers/payments"
	"shopstream/producers/reviews"
	orderviews "shopstream/projectors/orders"
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
	HTTPAddr    string
	Components  []string
	// CardPSPURL and SepaBankURL are the payment providers' APIs.
	CardPSPURL  string
	SepaBankURL string
	// SMTPAddr is the mail relay; MailFrom the sender of the shop's emails.
	SMTPAddr string
	MailFrom string
	// EmailRate is the email provider's quota, in emails per second for
	// the whole email consumer group. 0 means DefaultEmailRate.
	EmailRate float64
	// MaxInFlight bounds the commands the gateway runs at once; more get
	// 429 at once. 0 means DefaultMaxInFlight.
	MaxInFlight int
	// Replication is the replication factor of topics it creates; -1 for
	// the broker default.
	Replication int16
	Logger      *slog.Logger
	// DevEndpoints, set by `shop dev`, is what GET /dev/endpoints answers:
	// the embedded infrastructure, for tools such as `shop replay --http`.
	DevEndpoints any
	// OnReady, if set, is called once every component runs, with the
	// address the gateway listens on ("" without a gateway).
	OnReady func(httpAddr string)
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
	kopts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.WithLogger(kslog.New(log.With("component", "kafka-client")))}
	admin, err := kgo.NewClient(kopts...)
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

	metrics := prometheus.NewRegistry()
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
		prod, err := kgo.NewClient(append(kopts, kgo.ProducerLinger(2*time.Millisecond))...)
		if err != nil {
			return err
		}
		defer prod.Close()
		relay := outbox.NewRelay(pool, prod, outbox.RelayConfig{Logger: log})
		start(OutboxRelay, relay.Run)
	}
	// group runs a consumer group (a processor's or a projector's) as a
	// component, with a client of its own.
	group := func(name string, g interface {
		ClientOpts() []kgo.Opt
		Run(context.Context, *kgo.Client) error
	}) error {
		cl, err := kgo.NewClient(append(kopts, g.ClientOpts()...)...)
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
		return group(name, consumer.New(cfg))
	}
	svc := newServices(pool, serde)
	if has(StockFeed) {
		if err := consume(StockFeed, stockfeed.Config(svc.inventory, serde)); err != nil {
			return err
		}
	}
	if has(Saga) {
		sg := saga.New(pool, svc.orders, svc.inventory, svc.payments, log)
		if err := consume(Saga, sg.Config(serde)); err != nil {
			return err
		}
	}
	if has(PaymentsCard) || has(PaymentsSepa) {
		var providers [2]*pspclient.Client
		for i, url := range []string{cfg.CardPSPURL, cfg.SepaBankURL} {
			if providers[i], err = pspclient.New(pspclient.Config{BaseURL: url, Logger: log}); err != nil {
				return fmt.Errorf("payment provider %s: %w", url, err)
			}
		}
		p := paymentsproc.New(svc.payments, providers[0], providers[1], log)
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
		b := billingproc.New(billingproc.Deps{Pool: pool, Billing: svc.billing, Notifications: svc.notifications,
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
		sender := email.New(email.Deps{Notifications: svc.notifications, Billing: svc.billing, Mailer: m, Pacer: pacer, Logger: log})
		if err := consume(Email, sender.Config(serde)); err != nil {
			return err
		}
	}
	store := docstore.New(db)
	if has(ProjectorProducts) {
		if err := group(ProjectorProducts, runner.New(products.Projection(), serde, store, log)); err != nil {
			return err
		}
	}
	if has(ProjectorOrders) {
		if err := group(ProjectorOrders, runner.New(orderviews.Projection(), serde, store, log)); err != nil {
			return err
		}
	}
	httpAddr := ""
	if has(Gateway) {
		checks := infraChecks(admin, reg, mc, pool)
		for _, name := range cfg.Components {
			if flag := alive[name]; flag != nil {
				checks = append(checks, gateway.Check{Name: name, Check: func(context.Context) error {
					if !flag.Load() {
						return errors.New("stopped")
					}
					return nil
				}})
			}
		}
		hub := stockwatch.New(serde, log)
		if err := group("stockwatch", hub); err != nil {
			return err
		}
		gw := gateway.New(gateway.Deps{
			Commands: commandBus(svc, pool, cfg, metrics), Products: products.NewReader(db), Orders: orderviews.NewReader(db),
			Stock: hub, Checks: checks, Logger: log, DevEndpoints: cfg.DevEndpoints,
			Lag: func(ctx context.Context) ([]lag.Group, error) { return lag.Measure(ctx, kadm.NewClient(admin), known) },
		})
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("listen --http %s: %w", cfg.HTTPAddr, err)
		}
		httpAddr = ln.Addr().String()
		srv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
		start(Gateway, func(ctx context.Context) error {
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
	}
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
		billing.Migrations(), notifications.Migrations(), reviews.Migrations())
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

func infraChecks(k *kgo.Client, reg *sr.Client, mc *mongo.Client, pool *pgxpool.Pool) []gateway.Check {
	return []gateway.Check{
		{Name: "kafka", Check: k.Ping},
		{Name: "schema-registry", Check: func(ctx context.Context) error { _, err := reg.Subjects(ctx); return err }},
		{Name: "mongodb", Check: func(ctx context.Context) error { return mc.Ping(ctx, nil) }},
		{Name: "postgres", Check: pool.Ping},
	}
}
