package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"shopstream/internal/app"
	"shopstream/internal/devshop"
	"shopstream/internal/devstack"
	"shopstream/internal/loadtest"
	"shopstream/internal/loadtest/invariants"
	"shopstream/internal/loadtest/report"
)

func runLoadtest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("loadtest", stderr)
	target := fs.String("target", "", "URL of a running shop to load, e.g. http://127.0.0.1:8080 (or --embedded)")
	embedded := fs.Bool("embedded", false, "start a whole shop with embedded infrastructure in this process and load it")
	dataDir := fs.String("data-dir", "", "--embedded: directory of the shop's data (default: a fresh temporary directory, removed afterwards)")
	kafkaBrokers := fs.String("kafka-brokers", "", "--embedded: use this Kafka (comma-separated seed brokers) instead of the embedded broker")
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
	fs.Var(&brokers, "brokers", "--target: Kafka seed brokers of the shop (default: from its GET /dev/endpoints)")
	registryURL := fs.String("registry-url", "", "--target: schema registry URL, with --brokers")
	mongoURI := fs.String("mongo-uri", "", "--target: MongoDB URI of the read models, with --brokers")
	mongoDB := fs.String("mongo-db", "shop", "MongoDB database of the read models")
	mailDir := fs.String("mail-dir", "", "--target: directory of the SMTP server's .eml files, if readable (default: a `shop dev`'s own; I3 reads EmailSent events otherwise)")
	logLevel := fs.String("log-level", "warn", "--embedded: the shop's log level")
	shop := addShopFlags(fs)
	psp := addPSPFlags(fs)
	if err := parse(fs, args, getenv); err != nil {
		return err
	}
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
	if *quota < 0 {
		return fmt.Errorf("--email-quota %v: must not be negative", *quota)
	}
	p := loadtest.Profile{Name: *profile, BaseRPS: *baseRPS, SpikeX: *spikeX, SpikeFor: *spikeFor, SpikeAt: *spikeAt, Duration: *duration, Seed: *seed}
	if err := p.Check(); err != nil {
		return err
	}
	cfg := loadtest.Config{Target: *target, Profile: p, Workers: *workers, DrainTimeout: *drainTimeout, Out: *out, Progress: stderr}
	if !*embedded {
		e, err := infrastructure(ctx, brokers, *registryURL, *mongoURI, "--target", *target, "")
		if err != nil {
			return err
		}
		if *mailDir == "" {
			*mailDir = e.MailDir // a `shop dev` on this machine says where its mailbox is
		}
		cfg.Sources = sources(e, *mongoDB, *mailDir)
		cfg.EmailQuota = int(*quota)
		if *quota == 0 {
			cfg.EmailQuota = int(app.DefaultEmailRate)
		}
		rep, err := loadtest.Run(ctx, cfg)
		return printVerdict(stdout, rep, err)
	}

	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	dir := *dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "shop-loadtest-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	fmt.Fprintf(stdout, "starting an embedded shop in %s …\n", dir)
	var kafka listFlag
	if *kafkaBrokers != "" {
		if err := kafka.Set(*kafkaBrokers); err != nil {
			return fmt.Errorf("--kafka-brokers: %w", err)
		}
	}
	s, err := devshop.Start(ctx, psp.apply(devstack.Config{Dir: dir, Logger: log}), func(c *app.Config) {
		*c = shop.apply(*c)
		if len(kafka) > 0 {
			e, _ := c.DevEndpoints.(devstack.Endpoints)
			e.Brokers = kafka
			c.Brokers, c.DevEndpoints = kafka, e
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
	if len(kafka) > 0 {
		e.Brokers = kafka
	}
	cfg.Target = s.URL
	cfg.Sources = sources(e, "shop", e.MailDir)
	cfg.EmailQuota = int(*shop.emailRate)
	rep, err := loadtest.Run(ctx, cfg)
	return printVerdict(stdout, rep, err)
}

func sources(e devstack.Endpoints, mongoDB, mailDir string) invariants.Sources {
	return invariants.Sources{Brokers: e.Brokers, RegistryURL: e.RegistryURL, MongoURI: e.MongoURI, MongoDB: mongoDB,
		CardPSPURL: e.CardPSPURL, SepaBankURL: e.SepaBankURL, MailDir: mailDir}
}

// printVerdict prints the verdict of a run: each invariant, the totals, and the
// run's error (a violated invariant makes the exit code non-zero).
func printVerdict(w io.Writer, rep *report.Report, err error) error {
	if rep != nil {
		t := rep.Totals
		fmt.Fprintf(w, "load: %d requests, %.1f/s achieved: %d ok, %d shed (429), %d refused (4xx), %d errors, %d started late\n",
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
