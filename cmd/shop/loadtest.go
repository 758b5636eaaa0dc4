package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/app"
	"shopstream/internal/devinfra/devshop"
	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/tools/loadtest"
	"shopstream/internal/tools/loadtest/invariants"
	"shopstream/internal/tools/loadtest/report"
	"shopstream/projectors/runner"
)

func runLoadtest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("loadtest", stderr)
	target := fs.String("target", "", "URL of a running shop to load, e.g. http://127.0.0.1:8080 (or --embedded)")
	embedded := fs.Bool("embedded", false, "start a whole shop with embedded infrastructure in this process and load it")
	dataDir := fs.String("data-dir", ".shop", dataDirUsage+"; with --embedded, a fresh temporary directory (removed afterwards) unless given; "+
		"with --target, when given, its endpoints.json names the Kafka, registry, MongoDB, payment simulators and mailbox the checks read (not given: the target's GET /dev/endpoints)")
	profile := fs.String("profile", loadtest.BlackFriday, "load profile: steady, or blackfriday (the base rate, then --spike-x times it for --spike-for, then back down)")
	duration := fs.Duration("duration", 60*time.Second, "how long the load lasts (the drain comes after)")
	baseRPS := fs.Float64("base-rps", 5, "requests per second outside the spike")
	spikeX := fs.Float64("spike-x", 100, "blackfriday: the spike's rate is this times --base-rps")
	spikeFor := fs.Duration("spike-for", 0, "blackfriday: how long the spike lasts (0: a third of --duration)")
	spikeAt := fs.Duration("spike-at", 0, "blackfriday: when the spike starts (0: centred in --duration)")
	seed := fs.Int64("seed", 1, "seed of the shoppers' choices: one seed asks the same requests in the same order")
	workers := fs.Int("workers", loadtest.DefaultWorkers, "requests in flight at most")
	drainTimeout := fs.Duration("drain-timeout", loadtest.DefaultDrainTimeout, "how long to wait after the load for every order to end and every consumer group to catch up")
	out := fs.String("out", "loadtest-report", "directory of report.json, report.html and the charts as PNG")
	quota := fs.Float64("email-quota", 0, "--target: the shop's --email-rate, drawn as the quota line (default: the shop default)")
	// Where the invariant checks read, for a --target that is not a `shop dev`.
	var brokers listFlag
	fs.Var(&brokers, "brokers", brokersUsage+" (--embedded: instead of the embedded broker; --target: where the checks read, default from --data-dir, else the target's GET /dev/endpoints)")
	registryURL := fs.String("registry-url", "", "--target: schema registry URL, with --brokers")
	mongoURI := fs.String("mongo-uri", "", "--target: MongoDB URI of the read models, with --brokers")
	mongoDB := fs.String("mongo-db", "shop", "MongoDB database of the read models")
	cardPSPURL := fs.String("card-psp-url", "", "--target: the card PSP simulator, whose GET /charges I2 checks (default: from --data-dir or GET /dev/endpoints; unknown: I2 counts PaymentSucceeded events)")
	sepaBankURL := fs.String("sepa-bank-url", "", "--target: the SEPA bank simulator, whose GET /charges I2 checks (default: as --card-psp-url)")
	mailDir := fs.String("mail-dir", "", "--target: directory of the SMTP server's .eml files, if readable (default: a shop dev's own; I3 reads EmailSent events otherwise)")
	logLevel := fs.String("log-level", "warn", "--embedded: the shop's log level")
	ramp := fs.Bool("ramp", false, "find the capacity: raise the offered orders/s step by step until p99 or a stage's lag stops holding, then spike at --ramp-spike-x times the highest rate that held, then measure accepted→visible at half of it")
	rampStart := fs.Float64("ramp-start", 5, "--ramp: offered orders/s of the first step")
	rampStep := fs.Float64("ramp-step", 5, "--ramp: orders/s added at each step")
	rampMax := fs.Float64("ramp-max", 500, "--ramp: the highest orders/s offered")
	rampStepFor := fs.Duration("ramp-step-for", 10*time.Second, "--ramp: how long each step lasts")
	rampP99 := fs.Duration("ramp-p99", loadtest.DefaultRampP99, "--ramp: a step holds while the p99 of its requests stays within this")
	rampMix := fs.String("ramp-mix", loadtest.MixShoppers, "--ramp: shoppers (every action in proportion, orders at the offered rate) or orders (POST /orders alone)")
	rampSpikeX := fs.Float64("ramp-spike-x", loadtest.DefaultRampSpikeX, "--ramp: the spike offers this times the sustainable rate")
	rampSpikeFor := fs.Duration("ramp-spike-for", 60*time.Second, "--ramp: how long the spike lasts (0: no spike)")
	rampSpikeWorkers := fs.Int("ramp-spike-workers", 0, "--ramp: requests in flight at most during the spike (0: --workers); an open-loop spike needs its rate × its latency")
	rampVisibleFor := fs.Duration("ramp-visible-for", 30*time.Second, "--ramp: how long the half-capacity run measuring accepted→visible lasts (0: none)")
	rampVisibleBound := fs.Duration("ramp-visible-p99", loadtest.DefaultVisibleBound, "--ramp: the accepted→visible p99 half capacity must keep")
	rampPoll := fs.Duration("ramp-poll", loadtest.DefaultPoll, "--ramp: how often the accepted→visible probe reads GET /orders/{id}")
	shop := addShopFlags(fs)
	psp := addPSPFlags(fs)
	key := addStaffKeyFlag(fs)
	kafka := addKafkaSecFlags(fs)
	adminURL := fs.String("admin-target", "", adminTargetUsage+"; its GET /metrics gives the ramp the outbox backlog (default: a shop dev's, from --data-dir)")
	if err := parse(fs, args, getenv); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if (*target == "") == !*embedded {
		return errors.New("shop loadtest: give --target URL or --embedded, one of them")
	}
	if *workers < 1 {
		return fmt.Errorf("--workers %d: must be at least 1", *workers)
	}
	if err := shop.check(); err != nil {
		return err
	}
	if err := psp.check(); err != nil {
		return err
	}
	sec, err := kafka.security()
	if err != nil {
		return err
	}
	if *quota < 0 {
		return fmt.Errorf("--email-quota %v: must not be negative", *quota)
	}
	p := loadtest.Profile{Name: *profile, BaseRPS: *baseRPS, SpikeX: *spikeX, SpikeFor: *spikeFor, SpikeAt: *spikeAt, Duration: *duration, Seed: *seed}
	rc := loadtest.RampConfig{Start: *rampStart, Step: *rampStep, Max: *rampMax, StepFor: *rampStepFor, P99Bound: *rampP99, Mix: *rampMix,
		SpikeX: *rampSpikeX, SpikeFor: *rampSpikeFor, SpikeWorkers: *rampSpikeWorkers, VisibleFor: *rampVisibleFor, VisibleBound: *rampVisibleBound, Poll: *rampPoll}
	if *ramp {
		if err := rc.Check(); err != nil {
			return err
		}
		if *embedded && !set["email-rate"] {
			// The email group is quota-bound on purpose; at the default
			// quota the final drain would wait on emails for minutes.
			*shop.emailRate = rampEmailRate
			fmt.Fprintf(stdout, "--ramp: the embedded shop sends up to %v emails/s (--email-rate to change)\n", rampEmailRate)
		}
	} else if err := p.Check(); err != nil {
		return err
	}
	cfg := loadtest.Config{Target: *target, Profile: p, Workers: *workers, DrainTimeout: *drainTimeout, Out: *out, Progress: stderr}
	runLoad := func(cfg loadtest.Config) (*report.Report, error) {
		if *ramp {
			return loadtest.Ramp(ctx, cfg, rc)
		}
		return loadtest.Run(ctx, cfg)
	}
	if !*embedded {
		cfg.StaffKey = staffKey(*key, *dataDir)
		if cfg.StaffKey == "" {
			return errors.New("--staff-key: a staff API key of the target shop is needed to set up the catalogue (a shop dev keeps one in its --data-dir's secrets.json)")
		}
		e, err := targetInfrastructure(ctx, brokers, *registryURL, *mongoURI, *adminURL, targetDataDir(*dataDir, set["data-dir"]), *cardPSPURL, *sepaBankURL)
		if cfg.Admin = *adminURL; cfg.Admin == "" {
			cfg.Admin = e.Admin // a shop dev's, from its endpoints.json
		}
		if err != nil {
			return err
		}
		if *mailDir == "" {
			*mailDir = e.MailDir // a `shop infra` or `shop dev` on this machine says where its mailbox is
		}
		if e.CardPSPURL == "" || e.SepaBankURL == "" {
			fmt.Fprintln(stdout, "note: no --card-psp-url or --sepa-bank-url (nor --data-dir naming them): I2 counts that method's PaymentSucceeded events instead of the simulator's charges")
		}
		cfg.Sources = sources(e, *mongoDB, *mailDir)
		cfg.Sources.Kafka = kafka.opts()
		cfg.EmailQuota = int(*quota)
		if *quota == 0 {
			cfg.EmailQuota = int(app.DefaultEmailRate)
		}
		rep, err := runLoad(cfg)
		return printVerdict(stdout, rep, err)
	}

	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	dir := *dataDir
	if !set["data-dir"] {
		if dir, err = os.MkdirTemp("", "shop-loadtest-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	if len(brokers) > 0 {
		if err := noStaleProjectors(ctx, brokers, kafka.opts()); err != nil {
			return err
		}
	}
	where := "one database"
	if *shop.databasePerContext {
		where = "a database per context"
	}
	fmt.Fprintf(stdout, "starting an embedded shop in %s (PostgreSQL: %s) …\n", dir, where)
	realKafka := brokers
	s, err := devshop.Start(ctx, psp.apply(devstack.Config{Dir: dir, Logger: log}), func(c *app.Config) {
		*c = shop.apply(*c)
		c.Kafka = sec
		if !set["auth-rate"] && !set["auth-burst"] {
			// Every simulated shopper comes from this one address: the
			// per-address limit on sign-ups and log-ins must not stand in
			// for the shop's capacity.
			c.HTTPLimits.AuthRate, c.HTTPLimits.AuthBurst = loadtestAuthRate, loadtestAuthRate
		}
		if len(realKafka) > 0 {
			e, _ := c.DevEndpoints.(devstack.Endpoints)
			e.Brokers = realKafka
			c.Brokers, c.DevEndpoints = realKafka, e
		}
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := s.Stop(context.WithoutCancel(ctx)); err != nil {
			log.Error("stopping the embedded shop", "err", err)
		}
	}()
	e := s.Stack.Endpoints
	if len(realKafka) > 0 {
		e.Brokers = realKafka
	}
	cfg.Target, cfg.Admin = s.URL, s.Admin
	cfg.StaffKey = s.Stack.Secrets.StaffKey
	cfg.Sources = sources(e, "shop", e.MailDir)
	cfg.Sources.Kafka = kafka.opts()
	cfg.EmailQuota = int(*shop.emailRate)
	rep, err := runLoad(cfg)
	return printVerdict(stdout, rep, err)
}

// targetInfrastructure is where `shop loadtest --target` checks its
// invariants: the flags of external infrastructure, else the endpoints
// file of --data-dir (a `shop infra` the shop's `shop run` processes use),
// else the target's GET /dev/endpoints (a `shop dev`); --card-psp-url and
// --sepa-bank-url, when given, name the payment simulators whatever the
// source.
func targetInfrastructure(ctx context.Context, brokers []string, registryURL, mongoURI, adminURL, dataDir, cardURL, sepaURL string) (devstack.Endpoints, error) {
	if dataDir != "" {
		adminURL = ""
	}
	e, err := infrastructure(ctx, brokers, registryURL, mongoURI, adminURL, dataDir)
	if err != nil {
		return e, err
	}
	if cardURL != "" {
		e.CardPSPURL = cardURL
	}
	if sepaURL != "" {
		e.SepaBankURL = sepaURL
	}
	return e, nil
}

// rampEmailRate is the embedded shop's --email-rate under --ramp unless
// given.
const rampEmailRate = 2000

// loadtestAuthRate is the sign-ups and log-ins per second and burst an
// embedded shop admits from one address under load: the shoppers all
// come from this process.
const loadtestAuthRate = 10000

func sources(e devstack.Endpoints, mongoDB, mailDir string) invariants.Sources {
	return invariants.Sources{Brokers: e.Brokers, RegistryURL: e.RegistryURL, MongoURI: e.MongoURI, MongoDB: mongoDB,
		CardPSPURL: e.CardPSPURL, SepaBankURL: e.SepaBankURL, MailDir: mailDir}
}

// printVerdict prints the verdict of a run: each invariant, the totals, and the
// run's error (a violated invariant makes the exit code non-zero).
func printVerdict(w io.Writer, rep *report.Report, err error) error {
	if rep != nil && rep.Ramp != nil {
		printRamp(w, rep.Ramp, rep.Machine)
	}
	if rep != nil {
		t := rep.Totals
		fmt.Fprintf(w, "load: %d requests, %.1f/s achieved: %d ok, %d shed (429, or 503 with Retry-After), %d refused (4xx), %d errors, %d started late\n",
			t.Requests, t.AchievedRPS, t.OK, t.Shed, t.Refused, t.Errors, t.Late)
		fmt.Fprintf(w, "orders: %d accepted, %d confirmed, %d cancelled; %d emails sent (quota %d/s); drained: %v in %v\n",
			t.OrdersAccepted, t.OrdersConfirmed, t.OrdersCancelled, t.EmailsSent, rep.EmailQuota, rep.Drain.Drained, rep.Drain.Elapsed.Round(time.Millisecond))
		for _, inv := range rep.Invariants {
			verdict := "holds"
			if !inv.Holds {
				verdict = "VIOLATED"
			}
			fmt.Fprintf(w, "%s %-8s %s: %s\n", inv.ID, verdict, inv.Name, inv.Detail)
			for _, v := range inv.Violations {
				fmt.Fprintf(w, "     %s\n", v)
			}
		}
	}
	return err
}

// printRamp prints the capacity figures of a --ramp run.
func printRamp(w io.Writer, r *report.Ramp, m report.Machine) {
	fmt.Fprintf(w, "ramp: %d steps of %v from %v to at most %v orders/s (%s mix, %.1f requests per order), p99 bound %.0f ms\n",
		len(r.Steps), r.StepFor, r.StartRate, r.Max, r.Mix, r.RequestsPerOrder, r.P99BoundMs)
	for i, st := range r.Steps {
		verdict := "holds"
		if !st.Holds {
			verdict = "FAILS"
		}
		fmt.Fprintf(w, "  step %d: %6.1f orders/s offered, %6.1f accepted, p99 %6.1f ms, %d shed, %d 5xx, %d timeouts: %s\n",
			i+1, st.Offered, st.AcceptedOrders, st.P99, st.Answers.Shed429+st.Answers.Shed503, st.Answers.Status500+st.Answers.Other5xx, st.Answers.Timeouts, verdict)
		for _, s := range st.Stages {
			mark := "ok  "
			switch {
			case s.Quota:
				mark = "quota"
			case !s.Holds:
				mark = "FAIL"
			}
			backlog := ""
			if s.BacklogEnd >= 0 {
				backlog = fmt.Sprintf(" backlog %d → %d", max(s.BacklogStart, 0), s.BacklogEnd)
			}
			if s.P99Ms > 0 {
				backlog += fmt.Sprintf(" p99 %.0f ms", s.P99Ms)
			}
			fmt.Fprintf(w, "      %-5s %-34s %9.1f %-10s (asked %9.1f)%s %s\n", mark, s.Name, s.Rate, s.Unit, s.Expected, backlog, s.Reason)
		}
	}
	bn := r.Bottleneck
	if bn == "" {
		bn = "none"
	}
	fmt.Fprintf(w, "sustainable: %.1f orders/s; stopped by %s; bottleneck: %s (%s) [%d CPUs, shared]\n", r.Sustainable, r.Stopped, bn, r.BottleneckReason, m.CPUs)
	if sp := r.Spike; sp != nil {
		a := sp.Answers
		fmt.Fprintf(w, "spike: %.1f orders/s (%.0f×) for %v, all requests started in %v with %d in flight at most: %d sent, %d ok, %d shed 429, %d 503, %d answered 500, %d other 5xx, %d client timeouts, %d transport errors, %d sheds without Retry-After, %d started late, p99 %.0f ms\n",
			sp.Offered, sp.X, sp.For, sp.Took.Round(time.Millisecond), sp.Workers, a.Sent, a.OK, a.Shed429, a.Shed503, a.Status500, a.Other5xx, a.Timeouts, a.Transport, a.ShedWithoutRetryAfter, a.Late, sp.P99)
		fmt.Fprintf(w, "spike drain: %d orders accepted, %d not done at its end; drained %v in %v, bound 1.2 × %d ÷ %.1f/s = %v: holds %v\n",
			sp.AcceptedOrders, sp.BacklogOrders, sp.Drained, sp.Drain.Round(time.Millisecond), sp.BacklogOrders, r.Sustainable, sp.Bound.Round(time.Millisecond), sp.BoundHolds)
	}
	if v := r.Visible; v != nil {
		fmt.Fprintf(w, "accepted→visible at %.1f orders/s: %d orders, p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d not seen (poll %.0f ms, bound %.0f ms): holds %v\n",
			v.Offered, v.Orders, v.P50, v.P99, v.Max, v.NotSeen, v.PollMs, v.BoundMs, v.BoundHolds)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// targetDataDir is the data directory whose endpoints.json says where a
// --target shop's checks read: only one given on purpose, since a default
// .shop of this working directory may belong to another shop than the
// target (then the target's GET /dev/endpoints, or the flags, say it).
func targetDataDir(dir string, given bool) string {
	if !given {
		return ""
	}
	return dir
}

// noStaleProjectors refuses a broker that holds the projector groups of
// an earlier shop. An embedded shop starts with empty read models: its
// projectors, resuming those groups' offsets, would skip what they had
// folded, and I4 (the read models equal a replay of the log) would fail
// for want of it. The rest of an earlier shop's log does no harm: the
// projectors fold it again, and the other invariants read this run's
// commands.
func noStaleProjectors(ctx context.Context, brokers []string, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(brokers...))...)
	if err != nil {
		return fmt.Errorf("--brokers %s: %w", strings.Join(brokers, ","), err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	listed, err := kadm.NewClient(cl).ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("--brokers %s: list consumer groups: %w", strings.Join(brokers, ","), err)
	}
	var stale []string
	for _, g := range slices.Sorted(maps.Keys(app.Groups())) {
		if _, ok := listed[g]; ok && strings.HasPrefix(g, runner.GroupPrefix) {
			stale = append(stale, g)
		}
	}
	if len(stale) > 0 {
		return fmt.Errorf("--brokers %s: consumer groups %s of an earlier shop are on this broker: this run's shop starts with empty read models, and its projectors would resume those groups and skip what they folded (I4 would fail); delete the groups (kafka-consumer-groups.sh --delete --group …) or reset the broker (deploy/kafka/kafka.sh reset)",
			strings.Join(brokers, ","), strings.Join(stale, ", "))
	}
	return nil
}
