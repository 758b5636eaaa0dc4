package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/devinfra/embedded/ferret"
	"shopstream/internal/devinfra/embedded/postgres"
	"shopstream/internal/devinfra/embedded/psp"
	"shopstream/internal/devinfra/embedded/registry"
	"shopstream/internal/devinfra/embedded/smtpd"
	"shopstream/internal/testinfra/testenv"
	"shopstream/internal/tools/loadtest"
	"shopstream/internal/tools/loadtest/invariants"
	"shopstream/processors/saga"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// The fault matrix (issue 15): the shop deployed as three `shop run`
// processes (the API: gateway and outbox relay; the processors; the
// projectors) on a real Apache Kafka broker of the test's own, a private
// PostgreSQL and the embedded registry, MongoDB stand-in, payment
// simulators and SMTP server. For each row, a Black Friday load test runs
// through a proxy that counts every answer; 8 s in, the row's fault is
// applied and, after its hold, healed. Each row checks:
//
//   - the load test's invariants I1–I6, after its drain;
//   - that no answer was a 500 or another 5xx, and that every 429 and 503
//     was a problem+json with Retry-After ("shed"; a bare one fails the
//     row); a killed API process shows as the proxy's 502s, counted apart
//     as "unreachable", and the shop's refusals (409 sold out, 404 not
//     yet projected) as 4xx;
//   - its recovery: the first 2xx write after the heal (after the fault
//     for a kill and restart), and the consumer lag of every shop group
//     back to 0 (the load test's lag samples) after the heal or restart,
//     each against the row's bound; and, where the row bounds it, the read
//     models fresh again (the projector groups' lag 0) timed from the
//     fault itself.
//
// The matrix is logged as a table with each bound beside its figure and
// written as faults.txt and faults.json (under $SHOP_TEST_OUT when set,
// the test's temporary directory otherwise; .ci/run prints the table).
// It needs the Kafka installation of deploy/kafka/kafka.sh (`kafka.sh
// install`, as .ci/run does) and the PostgreSQL server binaries; without
// them it skips, saying so.
func TestFaultMatrix(t *testing.T) {
	testenv.Slow(t, "the fault matrix: ten faults under load on a real broker, about 10 minutes")
	began := time.Now()
	fx := startFaultStack(t)
	bin := buildShop(t)
	d := deploy(t, bin, fx)
	t.Logf("deployment ready in %s: broker %s, API %s (through the proxy %s)", time.Since(began).Round(time.Millisecond), fx.brokers(), d.api.base, d.proxy.url)

	var results []faultResult
	for i, row := range faultRows(fx, d, bin) {
		t.Run(row.name, func(t *testing.T) {
			res := runFault(t, fx, d, row, int64(i+1))
			results = append(results, res)
			for _, p := range res.problems {
				t.Error(p)
			}
		})
	}
	writeMatrix(t, results)
}

// faultRow is one fault: inject applies it and returns what heals it,
// called hold later.
type faultRow struct {
	name    string
	hold    time.Duration
	inject  func(t *testing.T) (heal func(t *testing.T))
	writes  time.Duration // bound: the first 2xx write after the heal
	drained time.Duration // bound: every group's lag back to 0 after the heal
	// fresh, when set, bounds the time from the fault until the read
	// models are fresh: the projector groups' lag back to 0.
	fresh time.Duration
	// tail is how long the load goes on after the fault's hold (default
	// 15 s): longer than the heal takes (a broker restart).
	tail time.Duration
	// killsSender marks a row that SIGKILLs the email sender: SMTP has
	// no exactly-once, so one invoice may go out again after the restart
	// (invariants.Sources.CrashResends), under the same Message-ID.
	killsSender bool
}

// faultResult is one row of the matrix.
type faultResult struct {
	Fault       string  `json:"fault"`
	Requests    int64   `json:"requests"`
	OK          int64   `json:"ok"`
	Status500   int64   `json:"status_500"`
	Shed        int64   `json:"shed"`        // 429 and 503 problems with Retry-After
	ShedBare    int64   `json:"shed_bare"`   // 429 and 503 without Retry-After or not problem+json: the row fails
	Refused     int64   `json:"refused_4xx"` // other 4xx: the shop's refusals (409 sold out, 404 not yet projected)
	Other5xx    int64   `json:"other_5xx"`   // any other 5xx the API answered: the row fails
	Unreachable int64   `json:"unreachable"` // the proxy's 502: the API process was down
	WritesBack  float64 `json:"writes_back_s"`
	LagZero     float64 `json:"lag_zero_s"`
	Fresh       float64 `json:"fresh_s"` // the projector groups' lag back to 0, from the fault
	Bounds      struct {
		WritesBack float64 `json:"writes_back_s"`
		LagZero    float64 `json:"lag_zero_s"`
		Fresh      float64 `json:"fresh_s,omitempty"` // 0: not bounded
	} `json:"bounds"`
	Invariants string   `json:"invariants"` // "I1–I6 hold" or the failing ones
	Holds      bool     `json:"holds"`
	problems   []string // why the row fails
}

const faultAt = 8 * time.Second // into the load

func runFault(t *testing.T, fx *faultStack, d *deployment, row faultRow, seed int64) faultResult {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	d.proxy.reset()
	dur := faultAt + row.hold + cmp.Or(row.tail, 15*time.Second)
	p := loadtest.Profile{Name: loadtest.BlackFriday, BaseRPS: 5, SpikeX: 4, SpikeAt: 5 * time.Second, SpikeFor: dur - 10*time.Second,
		Duration: dur, Seed: seed, Mix: loadtest.MixOrders}
	e := fx.endpoints()
	if row.killsSender {
		d.senderKills++ // the mailbox outlives the row: so does its allowance
	}
	cfg := loadtest.Config{Target: d.proxy.url, StaffKey: testStaffKey, Profile: p, Workers: 64, DrainTimeout: 3 * time.Minute,
		Sources: invariants.Sources{Brokers: e.Brokers, RegistryURL: e.RegistryURL, MongoURI: e.MongoURI, MongoDB: "shop",
			CardPSPURL: e.CardPSPURL, SepaBankURL: e.SepaBankURL, MailDir: e.MailDir, CrashResends: d.senderKills}, Out: filepath.Join(t.TempDir(), "report")}
	type outcome struct {
		lags  []lagAt
		inv   string
		holds bool
		err   error
	}
	done := make(chan outcome, 1)
	start := time.Now()
	go func() {
		rep, err := loadtest.Run(ctx, cfg)
		o := outcome{err: err}
		if rep != nil {
			var failing []string
			for _, inv := range rep.Invariants {
				if !inv.Holds {
					failing = append(failing, inv.ID+": "+inv.Detail)
				}
			}
			o.holds, o.inv = len(failing) == 0 && len(rep.Invariants) == 6, "I1–I6 hold"
			if !o.holds {
				o.inv = fmt.Sprintf("%d invariants reported; failing: %s", len(rep.Invariants), strings.Join(failing, "; "))
			}
			for _, s := range rep.Lag {
				l := lagAt{at: start.Add(time.Duration(s.T * float64(time.Second))), groups: len(s.Groups)}
				for g, n := range s.Groups {
					l.lag += n
					if strings.HasPrefix(g, runner.GroupPrefix) {
						l.projectors++
						l.projectorLag += n
					}
				}
				o.lags = append(o.lags, l)
			}
		}
		done <- o
	}()
	time.Sleep(time.Until(start.Add(faultAt)))
	injected := time.Now()
	heal := row.inject(t)
	time.Sleep(time.Until(injected.Add(row.hold)))
	// A fault that heals itself (a kill and restart) has its writes timed
	// from the fault; the lag, from the restart on.
	healed, settled := injected, time.Now()
	if heal != nil {
		heal(t)
		healed = time.Now()
		settled = healed
	}
	o := <-done

	c := d.proxy.counts()
	res := faultResult{Fault: row.name, Requests: c.total, OK: c.ok, Status500: c.s500, Shed: c.shed, ShedBare: c.shedBare,
		Refused: c.refused, Other5xx: c.other5xx, Unreachable: c.unreachable, Invariants: o.inv, WritesBack: -1, LagZero: -1, Fresh: -1}
	if w := c.firstWriteAfter(healed); !w.IsZero() {
		res.WritesBack = w.Sub(healed).Seconds()
	}
	for _, l := range o.lags {
		if l.at.After(settled) && l.groups > 0 && l.lag == 0 {
			res.LagZero = l.at.Sub(settled).Seconds()
			break
		}
	}
	// Fresh is timed from the fault itself, on the first sample after the
	// heal or restart (a sample before it may not have seen the fault yet).
	for _, l := range o.lags {
		if l.at.After(settled) && l.projectors > 0 && l.projectorLag == 0 {
			res.Fresh = l.at.Sub(injected).Seconds()
			break
		}
	}
	res.Bounds.WritesBack, res.Bounds.LagZero, res.Bounds.Fresh = row.writes.Seconds(), row.drained.Seconds(), row.fresh.Seconds()
	add := func(format string, args ...any) { res.problems = append(res.problems, fmt.Sprintf(format, args...)) }
	if o.err != nil && !errors.Is(o.err, loadtest.ErrInvariants) {
		add("load test: %v", o.err)
	}
	if !o.holds {
		add("invariants: %s", o.inv)
	}
	if c.s500 > 0 {
		add("%d answers were 500 (%s)", c.s500, strings.Join(c.samples500, "; "))
	}
	if c.shedBare > 0 {
		add("%d answers were 429 or 503 without Retry-After or not problem+json (%s)", c.shedBare, strings.Join(c.samplesBare, "; "))
	}
	if c.other5xx > 0 {
		add("%d answers were another 5xx (%s)", c.other5xx, strings.Join(c.samplesBare, "; "))
	}
	if row.fresh > 0 && (res.Fresh < 0 || res.Fresh > row.fresh.Seconds()) {
		add("read models fresh (projector lag 0) %.1f s after the fault (-1: never sampled at 0), bound %v", res.Fresh, row.fresh)
	}
	if res.WritesBack < 0 || res.WritesBack > row.writes.Seconds() {
		add("first 2xx write %.1f s after the heal (-1: none), bound %v", res.WritesBack, row.writes)
	}
	if res.LagZero < 0 || res.LagZero > row.drained.Seconds() {
		add("lag back to 0 %.1f s after the heal (-1: never sampled at 0), bound %v", res.LagZero, row.drained)
	}
	res.Holds = len(res.problems) == 0
	t.Logf("%s: %d requests, %d 2xx, %d 500, %d shed, %d unreachable; writes back %.1f s, lag 0 after %.1f s; %s",
		row.name, c.total, c.ok, c.s500, c.shed, c.unreachable, res.WritesBack, res.LagZero, o.inv)
	return res
}

type lagAt struct {
	at                 time.Time
	lag, projectorLag  int64
	groups, projectors int
}

// faultRows are the matrix's rows, in the order they run.
func faultRows(fx *faultStack, d *deployment, bin string) []faultRow {
	restart := func(p **shopRun) func(t *testing.T) func(t *testing.T) {
		return func(t *testing.T) func(t *testing.T) {
			(*p).kill(t)
			*p = d.start(t, (*p).components, (*p).addr)
			return nil
		}
	}
	return []faultRow{
		{name: "SIGKILL api (gateway, relay), restart", inject: restart(&d.api), writes: 15 * time.Second, drained: 60 * time.Second},
		{name: "SIGKILL processors, restart", inject: restart(&d.processors), writes: 5 * time.Second, drained: 60 * time.Second, killsSender: true},
		{name: "SIGKILL projectors, restart", inject: restart(&d.projectors), writes: 5 * time.Second, drained: 15 * time.Second, fresh: 15 * time.Second},
		{name: "SIGKILL broker, restart", inject: func(t *testing.T) func(t *testing.T) {
			fx.kafkaSignal(t, syscall.SIGKILL)
			return fx.kafkaStart
		}, hold: 5 * time.Second, tail: 30 * time.Second, writes: 5 * time.Second, drained: 90 * time.Second},
		{name: "SIGSTOP broker 20 s", inject: func(t *testing.T) func(t *testing.T) {
			fx.kafkaSignal(t, syscall.SIGSTOP)
			return func(t *testing.T) { fx.kafkaSignal(t, syscall.SIGCONT) }
		}, hold: 20 * time.Second, writes: 5 * time.Second, drained: 90 * time.Second},
		{name: "PostgreSQL stopped 15 s", inject: func(t *testing.T) func(t *testing.T) {
			fx.stopPostgres(t)
			return fx.startPostgres
		}, hold: 15 * time.Second, writes: 15 * time.Second, drained: 90 * time.Second},
		{name: "MongoDB stand-in killed, restarted", inject: func(t *testing.T) func(t *testing.T) {
			fx.stopMongo(t)
			// A read meanwhile is answered 503 with Retry-After within the
			// gateway's query deadline (3 s), not left to the client's timeout.
			began := time.Now()
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(d.proxy.url + "/products/0193f5a0-0000-7000-8000-000000000001")
			took := time.Since(began)
			if err != nil {
				t.Errorf("GET a product with the MongoDB stand-in down: %v after %v", err, took)
			} else {
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || took > 4*time.Second {
					t.Errorf("GET a product with the MongoDB stand-in down: %s, Retry-After %q, after %v; want 503 with Retry-After within 4 s",
						resp.Status, resp.Header.Get("Retry-After"), took)
				} else {
					t.Logf("GET a product with the MongoDB stand-in down: %s, Retry-After %s, after %v", resp.Status, resp.Header.Get("Retry-After"), took.Round(time.Millisecond))
				}
			}
			return fx.startMongo
		}, hold: 5 * time.Second, writes: 5 * time.Second, drained: 60 * time.Second},
		{name: "replay of products mid-spike", inject: func(t *testing.T) func(t *testing.T) {
			e := fx.endpoints()
			cmd := exec.Command(bin, "replay", "products", "--brokers", strings.Join(e.Brokers, ","), "--registry-url", e.RegistryURL,
				"--mongo-uri", e.MongoURI, "--drop-after", "2s")
			out := &testenv.LockedBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			return func(t *testing.T) {
				if err := cmd.Wait(); err != nil {
					t.Errorf("shop replay products: %v\n%s", err, out)
				}
			}
		}, writes: 5 * time.Second, drained: 60 * time.Second},
		{name: "poison record on shop.orders.v1 mid-spike", inject: func(t *testing.T) func(t *testing.T) {
			cl := fx.client(t)
			rec := &kgo.Record{Topic: schemas.TopicOrders, Key: []byte("poison-" + strconv.FormatInt(time.Now().UnixNano(), 36)), Value: []byte("not avro")}
			if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
				t.Fatalf("produce the poison record: %v", err)
			}
			return nil
		}, writes: 5 * time.Second, drained: 60 * time.Second},
		{name: "saga group moved back 500 offsets", inject: func(t *testing.T) func(t *testing.T) {
			d.processors.stop(t) // a group's offsets can be reset only while it has no member
			fx.rewind(t, saga.Group, 500)
			d.processors = d.start(t, d.processors.components, d.processors.addr)
			return nil
		}, writes: 5 * time.Second, drained: 60 * time.Second},
	}
}

// writeMatrix logs the matrix as a table and writes faults.json.
func writeMatrix(t *testing.T, results []faultResult) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\trequests\t2xx\t4xx\t500\tother 5xx\tshed\tshed bare\tunreachable\twrites back (s)\tlag 0 (s)\tfresh (s)\tinvariants\trow")
	bounded := func(v, bound float64) string {
		if bound == 0 {
			return fmt.Sprintf("%.1f", v)
		}
		return fmt.Sprintf("%.1f ≤ %g", v, bound)
	}
	for _, r := range results {
		verdict := "holds"
		if !r.Holds {
			verdict = "FAILS"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Fault, r.Requests, r.OK, r.Refused, r.Status500, r.Other5xx,
			r.Shed, r.ShedBare, r.Unreachable, bounded(r.WritesBack, r.Bounds.WritesBack), bounded(r.LagZero, r.Bounds.LagZero),
			bounded(r.Fresh, r.Bounds.Fresh), r.Invariants, verdict)
	}
	fmt.Fprintln(tw, "(fresh: the projector groups' lag back to 0, timed from the fault; writes back: the first 2xx write after the heal, or after the fault for a kill and restart; lag 0: every group's lag back to 0 after the heal or restart)")
	tw.Flush()
	t.Logf("fault matrix:\n%s", b.String())
	raw, _ := json.MarshalIndent(results, "", "  ")
	t.Logf("wrote %s", testenv.WriteOut(t, "faults.json", raw))
	testenv.WriteOut(t, "faults.txt", []byte(b.String()))
}

// deployment is the shop as three processes, the API behind a counting
// proxy on a fixed address.
type deployment struct {
	owner                       *testing.T // the matrix: the processes outlive each row
	bin                         string
	e                           func() devstack.Endpoints
	api, processors, projectors *shopRun
	proxy                       *countingProxy
	senderKills                 int // rows so far that SIGKILLed the email sender
}

func deploy(t *testing.T, bin string, fx *faultStack) *deployment {
	d := &deployment{owner: t, bin: bin, e: fx.endpoints}
	d.projectors = d.start(t, "projector-products,projector-orders", "")
	d.processors = d.start(t, "stockfeed,saga,payments-card,payments-sepa,billing,email", "")
	d.api = d.start(t, "gateway,outbox-relay", "")
	d.proxy = newCountingProxy(t, d.api.base)
	return d
}

// start starts `shop run --components` on addr ("" picks a free one).
func (d *deployment) start(t *testing.T, components, addr string) *shopRun {
	p := startRunAt(t, d.owner, d.bin, d.e(), components, addr)
	p.components = components
	return p
}

// countingProxy forwards to the API process and counts its answers.
type countingProxy struct {
	url string
	mu  sync.Mutex
	c   proxyCounts
}

type proxyCounts struct {
	total, ok, s500, shed, shedBare, refused, other5xx, unreachable int64
	samples500, samplesBare                                         []string
	writes                                                          []time.Time // when each 2xx write answered
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 64, ResponseHeaderTimeout: 30 * time.Second}
	rp.ModifyResponse = func(resp *http.Response) error {
		p.count(resp.Request, resp.StatusCode, resp)
		return nil
	}
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		p.count(r, http.StatusBadGateway, nil)
		w.WriteHeader(http.StatusBadGateway)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	p.url = "http://" + l.Addr().String()
	return p
}

func (p *countingProxy) count(r *http.Request, code int, resp *http.Response) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.c.total++
	switch {
	case code/100 == 2:
		p.c.ok++
		if r.Method != http.MethodGet {
			p.c.writes = append(p.c.writes, time.Now())
		}
	case code == http.StatusInternalServerError:
		p.c.s500++
		if len(p.c.samples500) < 3 && resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			resp.Body = io.NopCloser(strings.NewReader(string(body)))
			p.c.samples500 = append(p.c.samples500, r.Method+" "+r.URL.Path+": "+strings.Join(strings.Fields(string(body)), " "))
		}
	case code == http.StatusBadGateway && resp == nil:
		p.c.unreachable++
	case (code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable) &&
		resp.Header.Get("Retry-After") != "" && resp.Header.Get("Content-Type") == "application/problem+json":
		p.c.shed++
	case code/100 == 4 && code != http.StatusTooManyRequests:
		p.c.refused++
	default: // a bare 429 or 503, or another 5xx
		if code/100 == 5 && code != http.StatusServiceUnavailable {
			p.c.other5xx++
		} else {
			p.c.shedBare++
		}
		if len(p.c.samplesBare) < 3 {
			p.c.samplesBare = append(p.c.samplesBare, fmt.Sprintf("%s %s: %d Retry-After %q %s", r.Method, r.URL.Path, code, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type")))
		}
	}
}

func (p *countingProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.c = proxyCounts{}
}

func (p *countingProxy) counts() proxyCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.c
	c.writes = slices.Clone(c.writes)
	return c
}

// firstWriteAfter is when the first 2xx write answered after t.
func (c proxyCounts) firstWriteAfter(t time.Time) time.Time {
	for _, w := range c.writes {
		if w.After(t) {
			return w
		}
	}
	return time.Time{}
}

// faultStack is the matrix's infrastructure, each part stoppable and
// restartable on its addresses: a real broker run by kafka.sh in a home of
// its own, PostgreSQL (which also holds the MongoDB stand-in's documents),
// FerretDB, the registry, the payment simulators and SMTP.
type faultStack struct {
	t                    *testing.T
	dir, script          string
	kafkaEnv             []string
	kafkaPort            int
	pgPort               int
	pg                   *postgres.Server
	mongo                *ferret.Server
	mongoAddr, mongoPGDB string
	mongoURI             string // with the stand-in's credentials; the same across its restarts
	reg                  *registry.Server
	card, bank           *psp.Server
	smtp                 *smtpd.Server
	mailDir              string
	mu                   sync.Mutex
}

func startFaultStack(t *testing.T) *faultStack {
	t.Helper()
	ctx := context.Background()
	root, err := moduleRootDir()
	if err != nil {
		t.Fatal(err)
	}
	fx := &faultStack{t: t, dir: t.TempDir(), script: filepath.Join(root, "deploy", "kafka", "kafka.sh")}
	// The broker: the installed jars (kafka.sh install, as .ci/run does),
	// its own home, ports and data.
	if out, err := exec.Command("bash", fx.script, "install").CombinedOutput(); err != nil {
		t.Skipf("the fault matrix needs Kafka from deploy/kafka/kafka.sh install: %v\n%s", err, out)
	}
	libs, err := kafkaLibs(fx.script)
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(fx.dir, "kafka")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(libs, filepath.Join(home, "libs")); err != nil {
		t.Fatal(err)
	}
	fx.kafkaPort = freePort(t)
	fx.kafkaEnv = append(os.Environ(), "SHOP_KAFKA_HOME="+home, "SHOP_KAFKA_PORT="+strconv.Itoa(fx.kafkaPort),
		"SHOP_KAFKA_CONTROLLER_PORT="+strconv.Itoa(freePort(t)), "SHOP_KAFKA_SASL_PORT="+strconv.Itoa(freePort(t)), "SHOP_KAFKA_HEAP=384m")
	fx.kafkaStart(t)
	t.Cleanup(func() {
		fx.kafkaSignal(t, syscall.SIGCONT)
		_ = fx.kafka("stop").Run()
	})
	fx.pgPort = freePort(t)
	fx.startPostgres(t)
	t.Cleanup(func() { _ = fx.pg.Stop(context.Background()) })
	if fx.mongoPGDB, err = fx.pg.OwnDatabase(ctx, devstack.MongoDatabase, devstack.MongoRole); err != nil {
		t.Fatal(err)
	}
	fx.mongoAddr = freeAddr(t)
	fx.startMongo(t)
	t.Cleanup(func() { fx.stopMongo(t) })
	if fx.reg, err = registry.Start(registry.Config{File: filepath.Join(fx.dir, "registry.json"), Compatibility: schemas.Policy}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fx.reg.Stop(ctx) })
	if fx.card, err = psp.Start(ctx, psp.Config{Kind: psp.KindCard, File: filepath.Join(fx.dir, "card.jsonl"), Seed: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fx.card.Stop(ctx) })
	if fx.bank, err = psp.Start(ctx, psp.Config{Kind: psp.KindSEPA, File: filepath.Join(fx.dir, "sepa.jsonl"), Seed: 2}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fx.bank.Stop(ctx) })
	fx.mailDir = filepath.Join(fx.dir, "mail")
	if fx.smtp, err = smtpd.Start(ctx, smtpd.Config{Dir: fx.mailDir}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fx.smtp.Stop(ctx) })
	return fx
}

func (fx *faultStack) brokers() []string { return []string{"127.0.0.1:" + strconv.Itoa(fx.kafkaPort)} }

func (fx *faultStack) endpoints() devstack.Endpoints {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return devstack.Endpoints{Brokers: fx.brokers(), RegistryURL: fx.reg.URL(), MongoURI: fx.mongoURI,
		PostgresURL: fx.pg.URL(), CardPSPURL: fx.card.URL(), SepaBankURL: fx.bank.URL(), SMTPAddr: fx.smtp.Addr(), MailDir: fx.mailDir}
}

func (fx *faultStack) kafka(args ...string) *exec.Cmd {
	cmd := exec.Command("bash", append([]string{fx.script}, args...)...)
	cmd.Env = fx.kafkaEnv
	return cmd
}

func (fx *faultStack) kafkaStart(t *testing.T) {
	if out, err := fx.kafka("start").CombinedOutput(); err != nil {
		t.Fatalf("kafka.sh start: %v\n%s", err, out)
	}
}

// kafkaSignal sends sig to the broker process.
func (fx *faultStack) kafkaSignal(t *testing.T, sig syscall.Signal) {
	raw, err := os.ReadFile(filepath.Join(fx.dir, "kafka", "kafka.pid"))
	if err != nil {
		t.Fatalf("broker pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("broker pid %q: %v", raw, err)
	}
	if err := syscall.Kill(pid, sig); err != nil && !(sig == syscall.SIGCONT && errors.Is(err, syscall.ESRCH)) {
		t.Fatalf("signal %v to the broker: %v", sig, err)
	}
	if sig == syscall.SIGKILL {
		for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func (fx *faultStack) client(t *testing.T) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(fx.brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// rewind moves group's committed offsets back by n on every partition (not
// below the start). The group must have no member.
func (fx *faultStack) rewind(t *testing.T, group string, n int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(fx.client(t))
	for {
		described, err := adm.DescribeGroups(ctx, group)
		if err == nil && len(described[group].Members) == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("group %s still has members: %v", group, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	back := kadm.Offsets{}
	committed.Each(func(o kadm.OffsetResponse) {
		o.At = max(0, o.At-n)
		back.Add(o.Offset)
	})
	if err := adm.CommitAllOffsets(ctx, group, back); err != nil {
		t.Fatalf("rewind %s: %v", group, err)
	}
	var moved, parts int64
	committed.Each(func(o kadm.OffsetResponse) { moved, parts = moved+o.At-max(0, o.At-n), parts+1 })
	if moved == 0 {
		t.Fatalf("rewind %s: no committed offset to move back", group)
	}
	t.Logf("moved %s back by %d records over %d partitions: they are delivered again", group, moved, parts)
}

func (fx *faultStack) startPostgres(t *testing.T) {
	pg, err := postgres.Start(context.Background(), postgres.Config{Dir: filepath.Join(fx.dir, "postgres"), Port: fx.pgPort})
	if errors.Is(err, postgres.ErrBinariesNotFound) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	fx.mu.Lock()
	fx.pg = pg
	fx.mu.Unlock()
}

func (fx *faultStack) stopPostgres(t *testing.T) {
	if err := fx.pg.Stop(context.Background()); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
}

func (fx *faultStack) startMongo(t *testing.T) {
	srv, err := ferret.Start(context.Background(), ferret.Config{PostgreSQLURL: fx.mongoPGDB, Addr: fx.mongoAddr})
	if err != nil {
		t.Fatal(err)
	}
	fx.mu.Lock()
	fx.mongo, fx.mongoURI = srv, srv.URI()
	fx.mu.Unlock()
}

func (fx *faultStack) stopMongo(t *testing.T) {
	fx.mu.Lock()
	srv := fx.mongo
	fx.mongo = nil
	fx.mu.Unlock()
	if srv != nil {
		if err := srv.Stop(context.Background()); err != nil {
			t.Errorf("stop the MongoDB stand-in: %v", err)
		}
	}
}

// kafkaLibs is the libs directory of kafka.sh's installation: in
// $SHOP_KAFKA_HOME, or in its default home for the version of its pom.xml.
func kafkaLibs(script string) (string, error) {
	if home := os.Getenv("SHOP_KAFKA_HOME"); home != "" {
		return filepath.Join(home, "libs"), nil
	}
	pom, err := os.ReadFile(filepath.Join(filepath.Dir(script), "pom.xml"))
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`<kafka.version>([^<]+)</kafka.version>`).FindSubmatch(pom)
	if m == nil {
		return "", errors.New("no <kafka.version> in deploy/kafka/pom.xml")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".cache", "shopstream", "kafka-"+string(m[1]), "libs"), nil
}

// moduleRootDir is the directory of go.mod above the working directory.
func moduleRootDir() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}
