package app

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"shopstream/internal/edge/auth"
	"shopstream/internal/edge/gateway"
	"shopstream/internal/edge/stockwatch"
	"shopstream/internal/platform/docstore"
	"shopstream/internal/platform/metrics"
	"shopstream/internal/platform/outbox"
	"shopstream/internal/platform/pgdb"
	"shopstream/processors/charging"
	"shopstream/processors/charging/pspclient"
	"shopstream/processors/email"
	"shopstream/processors/email/mailer"
	"shopstream/processors/email/quota"
	"shopstream/processors/invoicing"
	"shopstream/processors/saga"
	"shopstream/processors/stockfeed"
	"shopstream/producers/orders"
	"shopstream/projectors/listing"
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

// Need is a piece of infrastructure a component is built on.
type Need string

// The infrastructure, named as readiness checks and 503 problems name it.
const (
	NeedPostgres Need = gateway.DepPostgres
	NeedMongo    Need = gateway.DepMongo
	NeedKafka    Need = gateway.DepKafka
	NeedRegistry Need = gateway.DepRegistry
	NeedSMTP     Need = DepSMTP
	NeedCardPSP  Need = "card-psp"
	NeedSepaBank Need = "sepa-bank"
)

// needOrder is the order Run connects and /readyz checks the needs in.
var needOrder = []Need{NeedPostgres, NeedMongo, NeedKafka, NeedRegistry, NeedSMTP, NeedCardPSP, NeedSepaBank}

// component is one row of the table: what it is built on, what of that it
// cannot work without, and how it is built.
type component struct {
	name string
	// needs are what Run connects before building it: an instance
	// connects the union of its components' needs, and only those.
	needs []Need
	// ready are the needs /readyz checks for it: an outage of anything
	// else (MongoDB for a processor, a PSP behind its circuit breaker,
	// Kafka for the gateway, whose outbox holds the events) takes it out
	// of no service and restarts nothing.
	ready []Need
	// groups are the consumer groups it runs: GET /lag knows them from
	// every instance, and w.consume refuses a group its row does not
	// declare.
	groups groups
	// build wires it on w and starts what it runs with w.start.
	build func(ctx context.Context, w *wiring) error
}

// table lists every component, in start order. (A function, not a
// variable: the gateway's row reaches the AsyncAPI document, which lists
// the components.)
func table() []component {
	return []component{
		{OutboxRelay, []Need{NeedPostgres, NeedKafka}, []Need{NeedPostgres, NeedKafka}, nil, buildOutboxRelay},
		{StockFeed, processorNeeds, processorNeeds, groups{stockfeed.Group: stockfeed.Topics}, func(_ context.Context, w *wiring) error {
			return w.consume(StockFeed, stockfeed.New(stockfeed.Deps{Inventory: w.svc.inventory, Logger: w.log}).Config(w.serde))
		}},
		{Saga, append(processorNeeds, NeedCardPSP, NeedSepaBank), processorNeeds, groups{saga.Group: saga.Topics}, buildSaga},
		{PaymentsCard, append(processorNeeds, NeedCardPSP), processorNeeds, groups{charging.CardGroup: charging.CardTopics}, func(_ context.Context, w *wiring) error {
			p, err := w.charging()
			if err != nil {
				return err
			}
			return w.consume(PaymentsCard, p.CardConfig(w.serde))
		}},
		{PaymentsSepa, append(processorNeeds, NeedSepaBank), processorNeeds, groups{charging.SepaGroup: charging.SepaTopics}, func(_ context.Context, w *wiring) error {
			p, err := w.charging()
			if err != nil {
				return err
			}
			return w.consume(PaymentsSepa, p.SepaConfig(w.serde))
		}},
		{Billing, processorNeeds, processorNeeds, groups{invoicing.Group: invoicing.Topics}, func(_ context.Context, w *wiring) error {
			p := invoicing.New(invoicing.Deps{Billing: w.svc.billing, Notifications: w.svc.notifications,
				Orders: w.svc.orders, Customers: w.svc.customers, Catalog: w.svc.catalog, Logger: w.log})
			return w.consume(Billing, p.Config(w.serde))
		}},
		{Email, append(processorNeeds, NeedSMTP), append(processorNeeds, NeedSMTP), groups{email.Group: email.Topics}, buildEmail},
		// The products projector runs the catalogue's read models: the
		// products, and their listing (the order GET /products pages in)
		// with its heads.
		{ProjectorProducts, projectorNeeds, projectorNeeds,
			projectionGroups(products.Projection()).and(projectionGroups(listing.Projection())).and(projectionGroups(listing.Heads())),
			func(_ context.Context, w *wiring) error {
				if err := project(w, ProjectorProducts, products.Projection()); err != nil {
					return err
				}
				if err := project(w, ProjectorProducts, listing.Projection()); err != nil {
					return err
				}
				return project(w, ProjectorProducts, listing.Heads())
			}},
		{ProjectorOrders, projectorNeeds, projectorNeeds, projectionGroups(orderviews.Projection()), func(_ context.Context, w *wiring) error {
			return project(w, ProjectorOrders, orderviews.Projection())
		}},
		// The gateway writes through the outbox (PostgreSQL) and reads the
		// read models (MongoDB); Kafka and the registry serve its event
		// streams, GET /lag and the events it encodes. (Its stock hub
		// tails a topic without a group.)
		{Gateway, []Need{NeedPostgres, NeedMongo, NeedKafka, NeedRegistry}, []Need{NeedPostgres, NeedMongo}, nil, buildGateway},
	}
}

// groups are the consumer groups a component runs, with the topics each
// consumes.
type groups map[string][]string

func projectionGroups[V any](p runner.Projection[V]) groups { return groups{p.Group(): p.Topics} }

// and is g with the groups of more.
func (g groups) and(more groups) groups {
	out := maps.Clone(g)
	maps.Copy(out, more)
	return out
}

// project runs p's runner in component name, with its checkpoint gauge;
// its client's metrics are labelled client=projector-<projection>. Its
// records get consumer spans only when spans are kept: a projector
// produces nothing that would carry their context on.
func project[V any](w *wiring, name string, p runner.Projection[V]) error {
	r := runner.New(p, w.serde, docstore.New(w.db), w.log)
	if w.exporting {
		r.WithTracing(w.tp)
	}
	w.prom.MustRegister(checkpointGauge(p.Name, r.Checkpoint))
	return w.groupAs(name, "projector-"+p.Name, r)
}

// Groups are the consumer groups of every component, with their topics:
// what GET /lag and shop_consumer_lag show from any instance, a group
// whose component runs elsewhere (or nowhere) included.
func Groups() map[string][]string {
	all := map[string][]string{}
	for _, c := range table() {
		maps.Copy(all, c.groups)
	}
	return all
}

var (
	processorNeeds = []Need{NeedPostgres, NeedKafka, NeedRegistry}
	projectorNeeds = []Need{NeedMongo, NeedKafka, NeedRegistry}
)

// Components lists every component, in start order.
func Components() []string {
	var out []string
	for _, c := range table() {
		out = append(out, c.name)
	}
	return out
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

// Requires lists what component is built on, in needOrder: what an
// instance running it must be given (flags, environment, compose
// dependencies).
func Requires(name string) []Need {
	c := row(name)
	return ordered(c.needs)
}

// Needs lists the dependencies component cannot do its work without, in
// the order /readyz checks them (see component.ready).
func Needs(name string) []string {
	c := row(name)
	var out []string
	for _, n := range ordered(c.ready) {
		out = append(out, string(n))
	}
	return out
}

// row is the table's row of component name (the zero row for none).
func row(name string) component {
	for _, c := range table() {
		if c.name == name {
			return c
		}
	}
	return component{}
}

// selected are the table's rows of names, in start order; union is what
// they need together.
func selected(names []string) (rows []component, union []Need) {
	seen := map[Need]bool{}
	for _, c := range table() {
		if !slices.Contains(names, c.name) {
			continue
		}
		rows = append(rows, c)
		for _, n := range c.needs {
			seen[n] = true
		}
	}
	for _, n := range needOrder {
		if seen[n] {
			union = append(union, n)
		}
	}
	return rows, union
}

func ordered(needs []Need) []Need {
	var out []Need
	for _, n := range needOrder {
		if slices.Contains(needs, n) {
			out = append(out, n)
		}
	}
	return out
}

func buildOutboxRelay(_ context.Context, w *wiring) error {
	prod, err := w.kclient(OutboxRelay, kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		return err
	}
	w.onClose(prod.Close)
	// One relay per outbox: each context's database has its own (and its
	// own leader lock), with the per-key order of the records it holds.
	var relays []*outbox.Relay
	backlogs := map[string]metrics.Querier{}
	_ = w.dbs.each(func(c string, pool *pgxpool.Pool) error {
		log := w.log
		if c != "" {
			log = log.With("outbox", c)
		}
		relays = append(relays, outbox.NewRelay(pool, prod, outbox.RelayConfig{Logger: log}))
		backlogs[c] = pool
		return nil
	})
	w.start(OutboxRelay, func(ctx context.Context) error {
		g, ctx := errgroup.WithContext(ctx)
		for _, r := range relays {
			g.Go(func() error { return r.Run(ctx) })
		}
		return g.Wait()
	})
	w.prom.MustRegister(metrics.Outbox(backlogs, 0, w.log))
	return nil
}

func buildSaga(ctx context.Context, w *wiring) error {
	// The saga's steps hold a connection of their own while their
	// commands take others: from a pool of their own, so that they never
	// wait on the pool they hold. A database of its own is such a pool.
	own := w.dbs.of(CtxSaga)
	if !w.cfg.DatabasePerContext {
		var err error
		if own, err = pgdb.Connect(ctx, w.cfg.PostgresURL); err != nil {
			return err
		}
		w.onClose(own.Close)
	}
	// A charge that comes after its order's payment timed out is refunded
	// through the provider that made it.
	refunders := map[string]saga.Refunder{}
	for method, url := range map[string]string{orders.Card: w.cfg.CardPSPURL, orders.Sepa: w.cfg.SepaBankURL} {
		if url == "" {
			continue
		}
		c, err := pspclient.New(pspclient.Config{BaseURL: url, Logger: w.log, Breaker: pspclient.BreakerConfig{Name: "saga-refund-" + method}})
		if err != nil {
			return fmt.Errorf("payment provider %s: %w", url, err)
		}
		refunders[method] = c
	}
	sg := saga.New(saga.Deps{Own: own, Orders: w.svc.orders, Inventory: w.svc.inventory, Payments: w.svc.payments,
		Refunders: refunders, Timeouts: saga.Timeouts{Card: w.cfg.PaymentTimeout, Sepa: w.cfg.SepaTimeout}, Logger: w.log})
	if err := w.consume(Saga, sg.Config(w.serde)); err != nil {
		return err
	}
	// Every saga instance runs a scheduler: they share the due deadlines,
	// each fired once (see saga.Scheduler).
	w.start(Saga+"-scheduler", sg.Scheduler(0).Run)
	return nil
}

// charging is the payment processor both payments components share, with
// a breaker gauge for each provider whose component runs here.
func (w *wiring) charging() (*charging.Processor, error) {
	if w.payments != nil {
		return w.payments, nil
	}
	var providers [2]*pspclient.Client
	targets := [2]string{"card", "sepa"}
	for i, url := range []string{w.cfg.CardPSPURL, w.cfg.SepaBankURL} {
		c, err := pspclient.New(pspclient.Config{BaseURL: url, Logger: w.log, Breaker: pspclient.BreakerConfig{Name: targets[i]}})
		if err != nil {
			return nil, fmt.Errorf("payment provider %s: %w", url, err)
		}
		providers[i] = c
		if slices.Contains(w.cfg.Components, []string{PaymentsCard, PaymentsSepa}[i]) {
			w.prom.MustRegister(breakerGauge(targets[i], c))
		}
	}
	w.payments = charging.New(charging.Deps{Payments: w.svc.payments, Card: providers[0], Bank: providers[1], Logger: w.log})
	return w.payments, nil
}

func buildEmail(_ context.Context, w *wiring) error {
	m, err := mailer.New(mailer.Config{Addr: w.cfg.SMTPAddr, From: cmp.Or(w.cfg.MailFrom, DefaultMailFrom)})
	if err != nil {
		return fmt.Errorf("--smtp-addr %s: %w", w.cfg.SMTPAddr, err)
	}
	rate := w.cfg.EmailRate
	if rate == 0 {
		rate = DefaultEmailRate
	}
	pacer, err := quota.New(quota.Config{Rate: rate, Partitions: schemas.DefaultPartitions})
	if err != nil {
		return fmt.Errorf("--email-rate %v: %w", rate, err)
	}
	sent := prometheus.NewCounter(prometheus.CounterOpts{Name: "shop_email_sent_total", Help: "Emails the SMTP relay accepted from this instance."})
	w.prom.MustRegister(sent,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_email_quota_per_second",
			Help: "This instance's share of the email quota: the group's quota times the share of the email partitions it owns."}, pacer.Share),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_email_group_quota_per_second",
			Help: "The email provider's quota for the whole email consumer group (--email-rate)."}, pacer.Rate))
	sender := email.New(email.Deps{Notifications: w.svc.notifications, Reveal: w.svc.customers.Reveal, Billing: w.svc.billing, Mailer: m, Pacer: pacer, Logger: w.log, Sent: sent})
	return w.consume(Email, sender.Config(w.serde))
}

// buildGateway serves the shop's API on the instance's HTTP listener.
func buildGateway(ctx context.Context, w *wiring) error {
	a := w.cfg.Auth
	if a.TokenSecret == "" {
		return fmt.Errorf("the gateway needs --auth-token-secret (at least %d bytes) to sign the customers' tokens", auth.MinSecret)
	}
	authn, err := auth.New(ctx, auth.Config{Secret: []byte(a.TokenSecret), TTL: a.TokenTTL, StaffKeys: a.StaffKeys,
		JWKSURL: a.JWKSURL, ExternalIssuer: a.Issuer, ExternalAudience: a.Audience})
	if err != nil {
		return err
	}
	hub := stockwatch.New(w.serde, w.log)
	if err := w.group("stockwatch", hub); err != nil {
		return err
	}
	w.hub = hub
	w.api = func(checks []gateway.Check) *gateway.Gateway {
		return gateway.New(gateway.Deps{
			Auth: authn, Login: w.svc.customers.Authenticate, CORSOrigins: w.cfg.CORSOrigins,
			Commands: commandBus(w.svc, w.dbs, w.cfg, w.prom), Products: products.NewReader(w.db), Orders: orderviews.NewReader(w.db),
			Stock: hub, Checks: checks, Logger: w.log,
			Metrics: w.prom, Tracing: w.tp, AsyncAPI: AsyncAPI, Limits: w.cfg.HTTPLimits,
		})
	}
	return nil
}
