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
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/trace"

	"shopstream/internal/edge/gateway"
	"shopstream/internal/platform/command"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/idempotency"
	"shopstream/internal/platform/kafkasec"
	"shopstream/internal/platform/lag"
	"shopstream/internal/platform/metrics"
	"shopstream/processors/charging/pspclient"
	"shopstream/producers/billing"
	"shopstream/producers/carts"
	"shopstream/producers/catalog"
	"shopstream/producers/customers"
	"shopstream/producers/inventory"
	"shopstream/producers/notifications"
	"shopstream/producers/orders"
	"shopstream/producers/payments"
	"shopstream/producers/reviews"
	"shopstream/schemas"
)

// Config is what Run needs.
type Config struct {
	Brokers []string
	// Kafka is how every Kafka client of the instance authenticates and
	// encrypts (SASL/SCRAM over TLS); the zero value is plaintext.
	Kafka       kafkasec.Security
	RegistryURL string
	MongoURI    string
	MongoDB     string
	PostgresURL string
	// DatabasePerContext gives every write context a database of its own
	// beside PostgresURL's ("shop" → "shop_orders", "shop_inventory", …;
	// see ContextDatabases), created and migrated at start: its tables,
	// its outbox and its idempotency keys. Otherwise all share
	// PostgresURL's database, each in its own schema.
	DatabasePerContext bool
	// HTTPAddr is where every instance serves /livez, /readyz and
	// /healthz; with the gateway component, the shop's API too.
	HTTPAddr string
	// AdminAddr is the admin listener: GET /metrics (Prometheus), /lag,
	// /dev/endpoints (shop dev), /livez, /readyz and /debug/pprof/, off
	// the public port. "" serves none of it.
	AdminAddr  string
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
	// Auth is who the gateway admits: the secret of its tokens, the
	// staff's API keys, an external issuer's JWKS.
	Auth Auth
	// CORSOrigins may call the API from a browser page (none by default).
	CORSOrigins []string
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
	// addresses HTTP and the admin listener listen on ("" without one).
	OnReady func(httpAddr, adminAddr string)
	// Tracing is the tracer provider of every component; nil builds one
	// from the OTEL_* environment (tracing.FromEnv, read with Getenv),
	// which Run shuts down as it returns.
	Tracing trace.TracerProvider
	// Getenv reads the environment for Tracing; nil is os.Getenv.
	Getenv func(string) string
}

// Auth configures the gateway's authentication (package auth).
type Auth struct {
	// TokenSecret signs the customers' tokens (HMAC-SHA256, at least 32
	// bytes); every gateway instance needs the same. Required with the
	// gateway.
	TokenSecret string
	TokenTTL    time.Duration // 0: auth.DefaultTTL
	StaffKeys   []string
	// JWKSURL, Issuer and Audience admit an external OpenID Connect
	// issuer's tokens too.
	JWKSURL, Issuer, Audience string
}

// Run starts the configured components and blocks until ctx ends. It
// connects the union of what they need (the component table), and only
// that; builds each, in the table's order; then serves GET /metrics,
// /livez, /readyz and /healthz on cfg.HTTPAddr, and with the gateway the
// shop's API. A runner that fails stops the instance, and Run returns its
// error.
func Run(ctx context.Context, cfg Config) error {
	rows, needs := selected(cfg.Components)
	w := newWiring(cfg)
	defer w.close()
	if err := w.connect(ctx, needs); err != nil {
		return err
	}
	w.ctx, w.cancel = context.WithCancelCause(ctx)
	defer w.cancel(nil)
	addr, admin, err := w.build(rows, needs)
	if err != nil {
		w.cancel(err)
		w.wg.Wait()
		return err
	}
	w.log.Info("components running", "components", cfg.Components, "http", addr, "admin", admin)
	if cfg.OnReady != nil {
		cfg.OnReady(addr, admin)
	}
	return w.wait()
}

// build builds every row, then the instance's HTTP server and its admin
// listener, and returns the addresses they listen on.
func (w *wiring) build(rows []component, needs []Need) (addr, admin string, err error) {
	for _, c := range rows {
		if err := c.build(w.ctx, w); err != nil {
			return "", "", fmt.Errorf("%s: %w", c.name, err)
		}
	}
	a := gateway.Admin{Metrics: w.prom, DevEndpoints: w.cfg.DevEndpoints, Logger: w.log}
	if w.admin != nil {
		var dlqs []string
		for _, t := range schemas.Topics() {
			dlqs = append(dlqs, eventlog.DeadLetterTopic(t.Name))
		}
		w.prom.MustRegister(metrics.Lag(w.kadm(), w.known, 0, w.log), metrics.DeadLetters(w.kadm(), dlqs, 0, w.log))
		a.Lag = func(ctx context.Context) ([]lag.Group, error) { return lag.Measure(ctx, w.kadm(), w.known) }
		con, err := w.console()
		if err != nil {
			return "", "", fmt.Errorf("console: %w", err)
		}
		w.onClose(con.Close)
		a.Console = con.Handler()
	}
	checks := readinessChecks(w.cfg.Components, w.infraChecks(needs), w.alive)
	a.Checks = checks
	// Every instance serves /livez, /readyz and /healthz (the alias of
	// /readyz); with the gateway, the gateway serves the rest, its own
	// /healthz included.
	mux := http.NewServeMux()
	mux.Handle("GET /livez", gateway.Livez())
	mux.Handle("GET /readyz", gateway.Readyz(checks))
	server := "http"
	var gw *gateway.Gateway
	if w.api != nil {
		gw = w.api(checks)
		mux.Handle("/", gw)
		server = Gateway
	} else {
		mux.Handle("GET /healthz", gateway.Healthz(checks))
	}
	srv := gateway.NewServer(gateway.WithProblems(mux), w.cfg.HTTPLimits)
	if gw != nil {
		srv.RegisterOnShutdown(gw.EndStreams)
	}
	if addr, err = w.serve(server, srv, "--http", w.cfg.HTTPAddr); err != nil || w.cfg.AdminAddr == "" {
		return addr, "", err
	}
	admin, err = w.serve("admin", gateway.NewServer(a.Handler(), w.cfg.HTTPLimits), "--admin-http", w.cfg.AdminAddr)
	return addr, admin, err
}

// serve runs srv on a listener of address at, given by flag, as the
// runner name, and returns the address it listens on. The runner ends
// once the requests in flight are answered (Serve returns as soon as
// Shutdown begins), so that what closes after the runners (tracing,
// pools) still serves them.
func (w *wiring) serve(name string, srv *http.Server, flag, at string) (string, error) {
	ln, err := net.Listen("tcp", at)
	if err != nil {
		return "", fmt.Errorf("listen %s %s: %w", flag, at, err)
	}
	w.start(name, func(ctx context.Context) error {
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		<-drained
		return nil
	})
	return ln.Addr().String(), nil
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
func commandBus(svc *services, dbs *databases, cfg Config, reg prometheus.Registerer) *command.Bus {
	maxInFlight := cfg.MaxInFlight
	if maxInFlight <= 0 {
		maxInFlight = DefaultMaxInFlight
	}
	bus := command.NewBus(
		command.Logging(cfg.Logger.With("component", "commands")),
		command.Metrics(reg),
		command.Validation(),
		command.Shed(maxInFlight),
		idempotency.Middleware(func(cmd command.Command) *pgxpool.Pool { return dbs.of(commandContext(cmd.CommandName())) }),
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

// newServices builds each context on its own database of dbs.
func newServices(dbs *databases, serde *eventlog.Serde) *services {
	s := &services{
		catalog: catalog.NewService(dbs.of(CtxCatalog), serde), customers: customers.NewService(dbs.of(CtxCustomers), serde),
		inventory: inventory.NewService(dbs.of(CtxInventory), serde), payments: payments.NewService(dbs.of(CtxPayments), serde),
		billing: billing.NewService(dbs.of(CtxBilling), serde), notifications: notifications.NewService(dbs.of(CtxNotifications), serde),
	}
	s.carts = carts.NewService(dbs.of(CtxOrders), serde, s.catalog.Exists, s.customers.Exists)
	s.reviews = reviews.NewService(dbs.of(CtxReviews), serde, s.catalog)
	s.orders = orders.NewService(dbs.of(CtxOrders), serde, orders.Deps{
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
	for _, d := range needOrder {
		if need[string(d)] {
			checks = append(checks, infra[string(d)])
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

// infraChecks ping each dependency needs lists, by name: a round trip
// that needs the server to answer, not just a pooled connection.
func (w *wiring) infraChecks(needs []Need) map[string]gateway.Check {
	m := map[string]gateway.Check{}
	add := func(n Need, check func(context.Context) error) {
		if slices.Contains(needs, n) {
			m[string(n)] = gateway.Check{Name: string(n), Check: check}
		}
	}
	add(NeedKafka, func(ctx context.Context) error { return w.admin.Ping(ctx) })
	add(NeedRegistry, func(ctx context.Context) error { _, err := w.reg.Subjects(ctx); return err })
	add(NeedMongo, func(ctx context.Context) error { return w.mc.Ping(ctx, nil) })
	add(NeedPostgres, func(ctx context.Context) error {
		return w.dbs.each(func(_ string, pool *pgxpool.Pool) error { return pool.Ping(ctx) })
	})
	// The relay answers a TCP connection: no SMTP session, so no message
	// and nothing for a provider to count.
	add(NeedSMTP, func(ctx context.Context) error {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", w.cfg.SMTPAddr)
		if err != nil {
			return err
		}
		return c.Close()
	})
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
