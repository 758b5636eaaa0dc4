package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/tracing"
	"shopstream/processors/charging"
	"shopstream/processors/consumer"
	"shopstream/schemas"
)

// wiring is what the components of one instance are built from: the
// infrastructure their needs connected (nil where none needs it) and the
// instance's registry, tracer and runners.
type wiring struct {
	cfg Config
	log *slog.Logger
	tp  trace.TracerProvider
	// exporting: tp keeps spans (cfg.Tracing, or OTEL_* asking for an
	// exporter); otherwise tp only propagates trace context.
	exporting bool
	prom      *prometheus.Registry

	// Connected on need (see connect).
	admin *kgo.Client     // NeedKafka
	reg   *sr.Client      // NeedRegistry
	serde *eventlog.Serde // NeedRegistry
	dbs   *databases      // NeedPostgres
	mc    *mongo.Client   // NeedMongo
	db    *mongo.Database // NeedMongo
	svc   *services       // NeedPostgres and NeedRegistry

	// known are the consumer groups GET /lag and shop_consumer_lag show
	// even when they are down: every component's (Groups).
	known map[string][]string
	// alive says, per runner started, whether it still runs.
	alive map[string]*atomic.Bool
	// api builds the gateway, once the readiness checks are known (set by
	// the gateway component).
	api func(checks []gateway.Check) *gateway.Gateway

	payments *charging.Processor // shared by both payments components
	hub      *stockwatch.Hub     // the gateway's stock notices (the console's feed too)

	ctx     context.Context
	cancel  context.CancelCauseFunc
	wg      sync.WaitGroup
	closers []func()
}

func newWiring(cfg Config) *wiring {
	return &wiring{cfg: cfg, log: cfg.Logger, prom: prometheus.NewRegistry(), alive: map[string]*atomic.Bool{},
		known: Groups()}
}

// connect sets up tracing and the instance's metrics, then connects what
// needs lists, and only that: topics are ensured with Kafka, schemas
// registered with the registry, migrations run with PostgreSQL.
func (w *wiring) connect(ctx context.Context, needs []Need) error {
	if err := w.tracing(ctx); err != nil {
		return err
	}
	w.prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, n := range needs {
		var err error
		switch n {
		case NeedKafka:
			if w.admin, err = w.kclient("admin"); err == nil {
				w.onClose(w.admin.Close)
				principal := cmp.Or(w.cfg.Kafka.User, "ANONYMOUS")
				if err = checkGrants(ctx, w.admin, principal, Grants(w.cfg.Components)); err == nil {
					err = eventlog.EnsureTopics(ctx, w.kadm(), w.cfg.Replication)
				}
			}
		case NeedRegistry:
			err = w.registry(ctx)
		case NeedPostgres:
			if w.dbs, err = openDatabases(ctx, w.cfg.PostgresURL, w.cfg.DatabasePerContext); err == nil {
				w.onClose(w.dbs.close)
				_, err = w.dbs.migrate(ctx)
			}
		case NeedMongo:
			if w.mc, err = mongo.Connect(options.Client().ApplyURI(w.cfg.MongoURI)); err != nil {
				err = fmt.Errorf("mongodb: %w", err)
			} else {
				w.onClose(func() { _ = w.mc.Disconnect(context.WithoutCancel(ctx)) })
				w.db = w.mc.Database(w.cfg.MongoDB)
			}
		}
		if err != nil {
			return err
		}
	}
	if w.dbs != nil && w.serde != nil {
		w.svc = newServices(w.dbs, w.serde)
	}
	return nil
}

func (w *wiring) registry(ctx context.Context) error {
	cat, err := schemas.Load()
	if err != nil {
		return err
	}
	if w.reg, err = sr.NewClient(sr.URLs(w.cfg.RegistryURL)); err != nil {
		return fmt.Errorf("schema registry: %w", err)
	}
	w.serde = eventlog.NewSerde(w.reg, cat)
	return w.serde.RegisterAll(ctx)
}

// tracing is cfg.Tracing, or one built from the OTEL_* environment and
// shut down at close.
func (w *wiring) tracing(ctx context.Context) error {
	if w.tp = w.cfg.Tracing; w.tp != nil {
		w.exporting = true
		return nil
	}
	getenv := w.cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	p, err := tracing.FromEnv(ctx, getenv, attribute.String("shop.components", strings.Join(w.cfg.Components, ",")))
	if err != nil {
		return err
	}
	w.onClose(func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(sctx); err != nil {
			w.log.Warn("tracing: spans not flushed", "err", err)
		}
	})
	w.tp, w.exporting = p, p.Enabled
	w.log.Info("tracing", "exporting", p.Enabled)
	return nil
}

// kclient builds a Kafka client whose franz-go metrics (kprom, under
// "shop_", labelled client=name) this instance serves.
func (w *wiring) kclient(name string, opts ...kgo.Opt) (*kgo.Client, error) {
	m := kprom.NewMetrics("shop", kprom.Registerer(w.prom), kprom.WithStaticLabel(prometheus.Labels{"client": name}))
	sec, err := w.cfg.Kafka.Opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(slices.Concat([]kgo.Opt{kgo.SeedBrokers(w.cfg.Brokers...),
		kgo.WithLogger(kslog.New(w.log.With("component", "kafka-client")))}, sec, opts, []kgo.Opt{kgo.WithHooks(m)})...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return cl, nil
}

func (w *wiring) kadm() *kadm.Client { return kadm.NewClient(w.admin) }

// start runs run until the instance stops; an error from it stops the
// instance, naming name. A component may start several runs: it is alive
// while all of them run.
func (w *wiring) start(name string, run func(context.Context) error) {
	flag := w.alive[name]
	if flag == nil {
		flag = &atomic.Bool{}
		flag.Store(true)
		w.alive[name] = flag
	}
	w.wg.Go(func() {
		defer flag.Store(false)
		if err := run(w.ctx); err != nil && w.ctx.Err() == nil {
			w.cancel(fmt.Errorf("%s: %w", name, err))
		}
	})
}

// group runs a consumer group (a processor's or a projector's) as a
// runner of component name, with a client of its own, whose metrics are
// labelled client=name.
func (w *wiring) group(name string, g groupRunner) error { return w.groupAs(name, name, g) }

// groupRunner runs a consumer group with the client it is given.
type groupRunner interface {
	ClientOpts() []kgo.Opt
	Run(context.Context, *kgo.Client) error
}

// groupAs is group with the client's metrics labelled client, for a
// component that runs several groups.
func (w *wiring) groupAs(name, client string, g groupRunner) error {
	cl, err := w.kclient(client, g.ClientOpts()...)
	if err != nil {
		return err
	}
	w.start(name, func(ctx context.Context) error { defer cl.Close(); return g.Run(ctx, cl) })
	return nil
}

// consume runs a processor's consumer group, which the row of component
// name must declare, with the same topics (GET /lag knows the groups from
// the table).
func (w *wiring) consume(name string, cfg consumer.Config) error {
	if topics, ok := row(name).groups[cfg.Group]; !ok || !slices.Equal(topics, cfg.Topics) {
		return fmt.Errorf("component %s runs group %s on %v, which its row of the component table does not declare", name, cfg.Group, cfg.Topics)
	}
	if cfg.Logger == nil {
		cfg.Logger = w.log
	}
	cfg.Tracing = w.tp
	return w.group(name, consumer.New(cfg))
}

// onClose runs f when the instance stops, after its runners, last
// registered first.
func (w *wiring) onClose(f func()) { w.closers = append(w.closers, f) }

func (w *wiring) close() {
	for _, f := range slices.Backward(w.closers) {
		f()
	}
}

// wait blocks until every runner returned and reports why the instance
// stopped (nil when its context was cancelled).
func (w *wiring) wait() error {
	<-w.ctx.Done()
	w.wg.Wait()
	if err := context.Cause(w.ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
