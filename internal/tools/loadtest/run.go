// Package loadtest drives a running shop with simulated shoppers at a
// profile's rate (steady, or a Black Friday spike), watches the pipeline
// absorb it (consumer lag, emails against the quota, stock of the hottest
// products), waits for it to drain, checks the design's invariants (I1 to
// I6) and writes a report with charts. It is `shop loadtest`.
//
// The load is open loop: requests are due at the profile's rate whatever
// the shop's answers, so a slow shop shows as latency, 429s and lag, not as
// a politely lower rate. The generator counts the requests it started late.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"

	"shopstream/internal/devinfra/embedded/smtpd"
	"shopstream/internal/edge/auth"
	"shopstream/internal/tools/loadtest/invariants"
	"shopstream/internal/tools/loadtest/report"
)

// Config is one run.
type Config struct {
	Target string // the shop's base URL
	// StaffKey is a staff API key of the shop: the run registers its
	// catalogue, restocks and reads the back office with it. Its shoppers
	// act as themselves: each signs up, logs in and sends its token.
	StaffKey string
	// Admin is the shop's admin listener (GET /metrics, /lag), "" when
	// unknown: the lag is then measured on Sources.Brokers, and the ramp
	// does without the outbox backlog.
	Admin     string
	Profile   Profile
	Catalogue Catalogue // zero: DefaultCatalogue
	// Workers bound the requests in flight; 0 means DefaultWorkers.
	Workers int
	// EmailQuota is the shop's email rate per second, drawn as the quota
	// line and shown beside the live email rate.
	EmailQuota int
	// DrainTimeout bounds the wait for the pipeline to finish after the
	// load; 0 means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// Sources say where the invariant checks read (their HTTP is Target).
	// Without brokers, emails are not followed and I1–I5 cannot be checked
	// (they fail, saying so).
	Sources invariants.Sources
	// Out is the directory of report.json, report.html and the PNG charts;
	// "" writes none.
	Out string
	// Progress receives a live line a second; nil shows none.
	Progress io.Writer
	Logger   *slog.Logger
}

// Defaults of Config.
const (
	DefaultWorkers      = 256
	DefaultDrainTimeout = 5 * time.Minute
)

// ErrInvariants is returned (wrapped, naming them) when an invariant does
// not hold; the report is still returned and written.
var ErrInvariants = errors.New("invariants violated")

// Run sets up the catalogue, runs the load, drains, checks the invariants
// and writes the report. The error wraps ErrInvariants when one fails.
func Run(ctx context.Context, cfg Config) (*report.Report, error) {
	if err := cfg.Profile.Check(); err != nil {
		return nil, err
	}
	if cfg.StaffKey == "" {
		return nil, errors.New("loadtest: a staff API key is needed to set up the catalogue (--staff-key)")
	}
	s, err := open(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer s.close()
	rep := s.rep
	rep.Profile = report.Profile{Name: cfg.Profile.Name, BaseRPS: cfg.Profile.BaseRPS, SpikeX: cfg.Profile.SpikeX,
		SpikeAt: cfg.Profile.SpikeAt, SpikeFor: cfg.Profile.SpikeFor, Duration: cfg.Profile.Duration, Seed: cfg.Profile.Seed}

	live, stopLive := context.WithCancel(ctx)
	var liveDone sync.WaitGroup
	liveDone.Go(func() { s.out.load(live, cfg, s.c, s.rec, s.smp, s.start) })
	drive(ctx, cfg.Profile, s.w, s.c, cfg.Workers, s.start)
	stopLive()
	liveDone.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.finish(ctx, time.Since(s.start), int(cfg.Profile.Duration/time.Second), func(sec int) float64 {
		return cfg.Profile.Rate(time.Duration(sec) * time.Second)
	})
}

// session is one run against a shop: its catalogue set up, the recorder
// counting from start, the sampler watching.
type session struct {
	cfg   Config
	out   *progress
	rec   *Recorder
	c     *client
	w     *world
	smp   *sampler
	start time.Time
	rep   *report.Report

	stopSampling context.CancelFunc
	sampling     sync.WaitGroup
}

// open fills cfg's defaults, sets up the catalogue and starts sampling;
// the load starts at the session's start.
func open(ctx context.Context, cfg *Config) (*session, error) {
	if cfg.Catalogue == (Catalogue{}) {
		cfg.Catalogue = DefaultCatalogue
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Target = strings.TrimRight(cfg.Target, "/")
	cfg.Sources.HTTP = cfg.Target
	cfg.Sources.StaffKey = cfg.StaffKey
	s := &session{cfg: *cfg, out: newProgress(cfg.Progress)}

	s.rec = NewRecorder(time.Now().Add(24 * time.Hour)) // nothing counts until the load starts
	s.c = &client{base: cfg.Target, admin: strings.TrimRight(cfg.Admin, "/"), rec: s.rec, http: auth.StaffClient(cfg.StaffKey,
		&http.Transport{MaxIdleConns: cfg.Workers, MaxIdleConnsPerHost: cfg.Workers, IdleConnTimeout: time.Minute})}
	s.c.http.Timeout = 10 * time.Second
	s.w = newWorld()
	s.out.line("setting up %d products (%d hot, %d in stock each) and %d customers at %s …",
		cfg.Catalogue.Products, cfg.Catalogue.HotProducts, cfg.Catalogue.HotStock, cfg.Catalogue.Customers, cfg.Target)
	if err := s.w.setup(ctx, s.c, cfg.Catalogue, cfg.Profile.Seed); err != nil {
		return nil, fmt.Errorf("set up the catalogue at %s: %w", cfg.Target, err)
	}

	s.rep = &report.Report{Target: cfg.Target, Started: time.Now(), Machine: machine(), EmailQuota: cfg.EmailQuota}
	s.start = time.Now()
	s.rec.start = s.start
	hot := s.w.products[:min(3, len(s.w.products))]
	smp, err := newSampler(ctx, s.c, s.start, hot, cfg.Sources.Brokers, cfg.Sources.Kafka)
	if err != nil {
		return nil, err
	}
	s.smp = smp
	sctx, stop := context.WithCancel(ctx)
	s.stopSampling = stop
	s.sampling.Go(func() { smp.run(sctx) })
	return s, nil
}

// close stops sampling (finish does it earlier).
func (s *session) close() {
	s.stopSampling()
	s.sampling.Wait()
}

// finish drains, checks the invariants, fills and writes the report, and
// says whether every invariant held. loadEnd is when the load ended,
// seconds its length, rate the target of each of its seconds.
func (s *session) finish(ctx context.Context, loadEnd time.Duration, seconds int, rate func(sec int) float64) (*report.Report, error) {
	cfg, rep, out := s.cfg, s.rep, s.out
	acc := s.w.snapshot()
	var ends orderEnds
	rep.Drain, ends = drain(ctx, cfg, s.smp, acc.Orders, out)
	end := time.Since(s.start)
	s.close()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("interrupted during the drain, invariants not checked: %w", err)
	}

	out.line("checking invariants I1–I6 …")
	rep.Invariants = invariants.Check(ctx, cfg.Sources, invariants.Accepted{
		Customers: acc.Customers, Products: acc.Products, Reviews: acc.Reviews, Orders: acc.Orders, CartAdds: acc.CartAdds})
	s.rec.Fill(rep, seconds, rate)
	s.smp.fill(rep, int(end/time.Second), mailboxTimes(cfg.Sources.MailDir, s.start, cfg.Logger))
	rep.Totals.AchievedRPS = float64(rep.Totals.Requests) / loadEnd.Seconds()
	rep.Totals.OrdersAccepted = int64(len(acc.Orders))
	rep.Totals.OrdersConfirmed, rep.Totals.OrdersCancelled = ends.confirmed, ends.cancelled

	if cfg.Out != "" {
		files, err := report.Write(cfg.Out, rep)
		if err != nil {
			return rep, fmt.Errorf("write the report: %w", err)
		}
		out.line("report: %s", strings.Join(files, ", "))
	}
	if rep.Totals.OrdersAccepted == 0 {
		// Every check would hold with nothing to check.
		return rep, fmt.Errorf("%w: no order was accepted (%d requests: %d shed, %d refused, %d errors), so the invariants checked nothing",
			ErrInvariants, rep.Totals.Requests, rep.Totals.Shed, rep.Totals.Refused, rep.Totals.Errors)
	}
	var failed []string
	for _, inv := range rep.Invariants {
		if !inv.Holds {
			failed = append(failed, inv.ID)
		}
	}
	if len(failed) > 0 {
		return rep, fmt.Errorf("%w: %s", ErrInvariants, strings.Join(failed, ", "))
	}
	return rep, nil
}

// mailboxTimes are the times the SMTP server received each message since
// start, when its mailbox is readable: the provider's own clock, which the
// quota is about. nil otherwise (the EmailSent events' times are used).
func mailboxTimes(dir string, start time.Time, log *slog.Logger) []time.Time {
	if dir == "" {
		return nil
	}
	mails, err := smtpd.ReadMailbox(dir)
	if err != nil {
		log.Warn("mailbox unreadable: emails/s from EmailSent events", "dir", dir, "err", err)
		return nil
	}
	times := []time.Time{}
	for _, m := range mails {
		if !m.Received.Before(start) {
			times = append(times, m.Received)
		}
	}
	return times
}

func machine() report.Machine {
	host, _ := os.Hostname()
	return report.Machine{Hostname: host, OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
}

// progress writes the live lines: on a terminal one line rewritten in
// place, elsewhere (CI logs) one line each time.
type progress struct {
	w   io.Writer
	tty bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		p.tty = isatty.IsTerminal(f.Fd())
	}
	return p
}

// line prints a finished line.
func (p *progress) line(format string, args ...any) {
	if p.w == nil {
		return
	}
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// status prints a line that the next one replaces on a terminal.
func (p *progress) status(format string, args ...any) {
	if p.w == nil {
		return
	}
	if !p.tty {
		p.line(format, args...)
		return
	}
	fmt.Fprintf(p.w, "\r\033[K"+format, args...)
}

// load shows, once a second, the last complete second of the load.
func (p *progress) load(ctx context.Context, cfg Config, c *client, rec *Recorder, smp *sampler, start time.Time) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sec := int(time.Since(start)/time.Second) - 1
		l := rec.Second(sec)
		c.toConsole(ctx, cfg.Profile.Name, sec, cfg.Profile.Rate(time.Duration(sec)*time.Second), l)
		lag, _ := smp.lastLag()
		p.status("[%3ds/%ds] target %4.0f/s sent %4d/s  answered %4d: ok %4d  shed %3d  4xx %3d  err %3d  p95 %5.0fms | lag %s | emails %d/s (quota %d)",
			sec+1, int(cfg.Profile.Duration/time.Second), cfg.Profile.Rate(time.Duration(sec)*time.Second), l.Sent, l.Answered, l.OK, l.Shed, l.Refused, l.Errors, l.P95,
			lagLine(lag), smp.emailsIn(sec), cfg.EmailQuota)
	}
}

// lagLine shows the groups that lag, most first, without the shop. prefix;
// "?" when the lag is unknown (nil: not measured yet, or the last GET /lag
// failed, e.g. while the broker is down), never a 0 it did not measure.
func lagLine(groups map[string]int64) string {
	if groups == nil {
		return "?"
	}
	var parts []string
	names := slices.Sorted(maps.Keys(groups))
	slices.SortStableFunc(names, func(a, b string) int { return int(groups[b] - groups[a]) })
	var total int64
	for _, g := range names {
		total += groups[g]
		if groups[g] > 0 && len(parts) < 4 {
			parts = append(parts, fmt.Sprintf("%s %d", strings.TrimPrefix(g, "shop."), groups[g]))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}
