package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/devinfra/embedded/postgres"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/outbox"
	"shopstream/internal/platform/pgdb"
	"shopstream/schemas"

	"shopstream/internal/edge/auth"
	"shopstream/internal/testinfra/testenv"
)

// Crash safety (issue 3): a `shop run` child killed with SIGKILL after it
// committed commands but before its relay published their events loses no
// event, and publishes none out of order, once a new child runs.
//
// The embedded infrastructure runs in this test process, so it outlives the
// children. Phase 1 commits with a gateway but no relay (the events are in
// the outbox, none on the topic) and kills it; phase 2 kills a gateway and
// relay under load, at a random moment, a few times; phase 3 restarts them,
// waits for the outbox to drain and checks the whole topic against the
// commands the gateway accepted and the state PostgreSQL committed.
func TestCrashKillLosesNoEventAndKeepsOrder(t *testing.T) {
	testenv.Slow(t, "builds the shop binary and SIGKILLs it, about 10 s")
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	e := startStack(ctx, t, devstack.Config{Dir: t.TempDir()})
	pool, err := pgdb.Connect(ctx, e.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	bin := buildShop(t)
	t.Logf("infrastructure and binary ready in %s", time.Since(began).Round(time.Millisecond))
	led := newLedger()

	// Phase 1: after commit, before publish, deterministically: no relay runs.
	gw := startRun(t, bin, e, "gateway")
	const products1, restocks1 = 6, 5
	for i := range products1 {
		id, ok := led.create(gw.client, gw.base, fmt.Sprintf("crash phase 1 #%d", i))
		if !ok {
			t.Fatalf("phase 1: product %d not accepted:\n%s", i, gw.out)
		}
		for range restocks1 {
			if !led.restock(gw.client, gw.base, id) {
				t.Fatalf("phase 1: restock of %s not accepted:\n%s", id, gw.out)
			}
		}
	}
	const want1 = products1 * (1 + restocks1)
	if n := pending(t, pool); n != want1 {
		t.Fatalf("phase 1: outbox holds %d rows after %d accepted commands, want %d", n, want1, want1)
	}
	if n := topicRecords(t, e.Brokers); n != 0 {
		t.Fatalf("phase 1: %d records on %s without any relay running", n, schemas.TopicProducts)
	}
	gw.kill(t)
	if n := pending(t, pool); n != want1 {
		t.Fatalf("phase 1: outbox holds %d rows after SIGKILL, want %d", n, want1)
	}
	if n := topicRecords(t, e.Brokers); n != 0 {
		t.Fatalf("phase 1: %d records on %s after SIGKILL", n, schemas.TopicProducts)
	}
	t.Logf("phase 1: %d events committed to the outbox, none published, gateway killed", want1)

	// Phase 2: kill gateway and relay mid-flight, a few times.
	const rounds, workers = 3, 4
	for round := 1; round <= rounds; round++ {
		c := startRun(t, bin, e, "gateway,outbox-relay")
		var stop atomic.Bool
		var accepted atomic.Int64
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for n := 0; !stop.Load(); n++ {
					if rand.IntN(5) == 0 {
						if _, ok := led.create(c.client, c.base, fmt.Sprintf("crash round %d worker %d #%d", round, w, n)); ok {
							accepted.Add(1)
						}
					} else if led.restock(c.client, c.base, led.pick()) {
						accepted.Add(1)
					}
				}
			})
		}
		// Let the relay publish for a while, then kill at a random moment.
		for deadline := time.Now().Add(10 * time.Second); accepted.Load() < 40 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		if accepted.Load() == 0 {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("round %d: no command accepted in 10 s:\n%s", round, c.out)
		}
		time.Sleep(time.Duration(rand.IntN(600)) * time.Millisecond)
		// No new request from here; those in flight meet the kill.
		stop.Store(true)
		c.kill(t)
		wg.Wait()
		t.Logf("round %d: killed after %d accepted commands; after it %d rows were left in the outbox, %d records on the topic",
			round, accepted.Load(), pending(t, pool), topicRecords(t, e.Brokers))
	}

	// Phase 3: restart, and command again the products whose events the
	// last kill left in the outbox, while the new relay publishes them.
	backlog := pendingProducts(t, pool)
	c := startRun(t, bin, e, "gateway,outbox-relay")
	for _, id := range append(backlog, led.products()[:products1]...) {
		if !led.restock(c.client, c.base, id) {
			t.Fatalf("phase 3: restock of %s not accepted:\n%s", id, c.out)
		}
	}
	t.Logf("phase 3: restarted; restocked the %d products with unpublished events and the %d of phase 1", len(backlog), products1)
	for deadline := time.Now().Add(30 * time.Second); ; {
		n := pending(t, pool)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("phase 3: the outbox still holds %d rows 30 s after restart:\n%s", n, c.out)
		}
		time.Sleep(20 * time.Millisecond)
	}

	log := readProducts(t, e.Brokers)
	committed := committedVersions(t, pool)
	failures := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if failures++; failures <= 15 {
			t.Errorf(format, args...)
		}
	}
	total, distinct, dups := 0, 0, 0
	for key, recs := range log {
		d, err := checkOrder(recs)
		if err != nil {
			fail("product %s: %v", key, err)
		}
		n := len(uniqueVersions(recs))
		total, distinct, dups = total+len(recs), distinct+n, dups+d
		// No committed event is missing, and none was invented.
		if v, ok := committed[key]; !ok {
			fail("product %s is on the topic but not in PostgreSQL", key)
		} else if int64(n) != v {
			fail("product %s: PostgreSQL committed version %d, the topic has %d distinct versions", key, v, n)
		}
	}
	for key, v := range committed {
		if _, ok := log[key]; !ok {
			fail("product %s: PostgreSQL committed version %d, the topic has none of its events", key, v)
		}
	}
	// Every accepted command's event is there; none of a refused one.
	acceptedEvents := 0
	for _, id := range led.products() {
		accepted, unknown := led.counts(id)
		acceptedEvents += 1 + accepted
		n := len(uniqueVersions(log[id]))
		if n < 1+accepted || n > 1+accepted+unknown {
			fail("product %s: %d events on the topic; accepted: registered + %d restocks, %d of unknown outcome", id, n, accepted, unknown)
		}
	}
	if failures > 15 {
		t.Errorf("… and %d more failures", failures-15)
	}
	if n := len(led.products()); n < products1+rounds {
		t.Errorf("only %d products accepted in all", n)
	}
	t.Logf("topic %s: %d records for %d products: %d distinct events (%d from accepted commands; %d commands of unknown outcome, %d refused), %d duplicates from republication",
		schemas.TopicProducts, total, len(log), distinct, acceptedEvents, led.unknownTotal(), led.refused.Load(), dups)
	if strings.Contains(c.out.String(), "relay interrupted") {
		t.Logf("the restarted relay reported interruptions:\n%s", c.out)
	}
	t.Logf("took %s", time.Since(began).Round(time.Millisecond))
}

// shopRun is a `shop run` child process.
// startStack starts the embedded infrastructure the children share, in the
// test process, or skips the test without PostgreSQL's binaries. Its
// cleanup is registered first, so it runs last: after every child was
// killed.
func startStack(ctx context.Context, t *testing.T, cfg devstack.Config) devstack.Endpoints {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	stack, err := devstack.Start(ctx, cfg)
	if errors.Is(err, postgres.ErrBinariesNotFound) {
		t.Skip("embedded PostgreSQL needs its server binaries: " + err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		if err := stack.Stop(sctx); err != nil {
			t.Errorf("stop embedded infrastructure: %v", err)
		}
	})
	return stack.Endpoints
}

type shopRun struct {
	cmd        *exec.Cmd
	out        *testenv.LockedBuffer
	base       string
	addr       string // --http
	components string
	client     *http.Client
	exited     chan error
}

// The credentials every `shop run` of these tests admits; their clients
// act as staff (who may act for any customer).
const (
	testTokenSecret = "the token secret of the cmd/shop tests"
	testStaffKey    = "sk_test_cmd_shop_staff_key"
)

// runArgs are the arguments of `shop run --components=components`
// against e, serving HTTP on addr.
func runArgs(e devstack.Endpoints, components, addr string) []string {
	return []string{"run", "--components=" + components,
		"--brokers", strings.Join(e.Brokers, ","), "--registry-url", e.RegistryURL, "--mongo-uri", e.MongoURI,
		"--postgres-url", e.PostgresURL, "--card-psp-url", e.CardPSPURL, "--sepa-bank-url", e.SepaBankURL,
		"--smtp-addr", e.SMTPAddr, "--http", addr, "--log-level", childLogLevel(),
		"--auth-token-secret", testTokenSecret, "--staff-keys", testStaffKey,
		"--auth-rate", "10000", "--auth-burst", "10000"} // the tests' shoppers all come from one address
}

// staffClient is an HTTP client acting as staff with testStaffKey.
func staffClient(next http.RoundTripper) *http.Client {
	c := auth.StaffClient(testStaffKey, next)
	c.Timeout = 10 * time.Second
	return c
}

// startRun starts `shop run --components=components` against e and waits
// until its gateway is healthy. `shop run` does not print the address it
// listens on, so the test picks a free port and passes it.
func startRun(t *testing.T, bin string, e devstack.Endpoints, components string) *shopRun {
	t.Helper()
	return startRunAt(t, t, bin, e, components, "")
}

// startRunAt is startRun listening on addr ("" picks a free port), killed
// when owner ends (a test that outlives t's subtest).
func startRunAt(t *testing.T, owner testing.TB, bin string, e devstack.Endpoints, components, at string) *shopRun {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := at
		if addr == "" {
			addr = freeAddr(t)
		}
		cmd := exec.Command(bin, runArgs(e, components, addr)...)
		p := &shopRun{cmd: cmd, out: &testenv.LockedBuffer{}, base: "http://" + addr, addr: addr, components: components, exited: make(chan error, 1),
			client: staffClient(&http.Transport{MaxIdleConnsPerHost: 16})}
		cmd.Stdout, cmd.Stderr = p.out, p.out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.exited <- cmd.Wait() }()
		owner.Cleanup(func() { _ = cmd.Process.Kill() })
		if !strings.Contains(components, "gateway") { // no gateway: wait for its ready line
			if p.waitOutput("shop run ready", 60*time.Second) {
				return p
			}
			t.Fatalf("shop run --components=%s not ready:\n%s", components, p.out)
		}
		healthy, err := p.waitHealthy(60 * time.Second)
		if healthy {
			return p
		}
		if err != nil && strings.Contains(p.out.String(), "listen --http") && attempt < 3 && at == "" {
			continue // the picked port was taken meanwhile
		}
		t.Fatalf("shop run --components=%s not healthy (exit: %v):\n%s", components, err, p.out)
	}
}

// waitOutput waits for the child to print s; false if it exits first.
func (p *shopRun) waitOutput(s string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		if strings.Contains(p.out.String(), s) {
			return true
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

// waitHealthy polls /healthz; it returns false with the exit error if the
// child exits first.
func (p *shopRun) waitHealthy(timeout time.Duration) (bool, error) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		if resp, err := p.client.Get(p.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true, nil
			}
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			return false, fmt.Errorf("exited early: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false, nil
}

// stop sends SIGTERM and waits for the child to exit.
func (p *shopRun) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.out)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("child still running 30 s after SIGTERM:\n%s", p.out)
	}
	p.client.CloseIdleConnections()
}

// kill sends SIGKILL and checks the child died of it, not on its own.
func (p *shopRun) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v\n%s", err, p.out)
	}
	select {
	case err := <-p.exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("child exit after SIGKILL: %v\n%s", err, p.out)
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child did not die of SIGKILL: %v\n%s", err, p.out)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("child still running 10 s after SIGKILL")
	}
	p.client.CloseIdleConnections()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ledger records the outcome of every command sent: accepted (2xx), refused
// (4xx: nothing committed) or unknown (transport error or 5xx: it may have
// committed).
type ledger struct {
	mu       sync.Mutex
	ids      []string       // products whose registration was accepted, in order
	restocks map[string]int // accepted restocks per product
	unknown  map[string]int // restocks of unknown outcome per product
	refused  atomic.Int64
	unknownC atomic.Int64 // registrations of unknown outcome
}

func newLedger() *ledger {
	return &ledger{restocks: map[string]int{}, unknown: map[string]int{}}
}

func (l *ledger) create(c *http.Client, base, title string) (string, bool) {
	body := fmt.Sprintf(`{"title": %q, "price_cents": 1999, "quantity": 1}`, title)
	code, b, err := post(c, base+"/products", body)
	switch {
	case err != nil || code >= 500:
		l.unknownC.Add(1)
		return "", false
	case code >= 300:
		l.refused.Add(1)
		return "", false
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil || m["id"] == "" {
		l.unknownC.Add(1)
		return "", false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ids = append(l.ids, m["id"])
	return m["id"], true
}

func (l *ledger) restock(c *http.Client, base, id string) bool {
	code, _, err := post(c, base+"/products/"+id+"/restock", `{"quantity": 1}`)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil || code >= 500:
		l.unknown[id]++
		return false
	case code >= 300:
		l.refused.Add(1)
		return false
	}
	l.restocks[id]++
	return true
}

func (l *ledger) pick() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ids[rand.IntN(len(l.ids))]
}

func (l *ledger) products() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ids...)
}

func (l *ledger) counts(id string) (accepted, unknown int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.restocks[id], l.unknown[id]
}

func (l *ledger) unknownTotal() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.unknownC.Load()
	for _, u := range l.unknown {
		n += int64(u)
	}
	return n
}

func post(c *http.Client, url, body string) (int, []byte, error) {
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func pending(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	n, err := outbox.Pending(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// pendingProducts are the products with events left in the outbox.
func pendingProducts(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		`SELECT DISTINCT convert_from(key, 'UTF8') FROM outbox.records WHERE topic = $1`, schemas.TopicProducts)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// committedVersions is the version of every product PostgreSQL committed.
func committedVersions(t *testing.T, pool *pgxpool.Pool) map[string]int64 {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id, version FROM catalog.products`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		out[id] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func productEnds(t *testing.T, brokers []string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, schemas.TopicProducts)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	if len(out) == 0 {
		t.Fatalf("topic %s has no partition", schemas.TopicProducts)
	}
	return out
}

func topicRecords(t *testing.T, brokers []string) int64 {
	t.Helper()
	var n int64
	for _, o := range productEnds(t, brokers) {
		n += o
	}
	return n
}

// logRecord is what the checks need of one record of the products topic.
type logRecord struct {
	offset  int64
	version int64
	id, typ string
}

// readProducts reads the whole products topic, per key in log order.
func readProducts(t *testing.T, brokers []string) map[string][]logRecord {
	t.Helper()
	ends := productEnds(t, brokers)
	start := map[int32]kgo.Offset{}
	left := 0
	for p, end := range ends {
		start[p] = kgo.NewOffset().At(0)
		if end > 0 {
			left++
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{schemas.TopicProducts: start}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := map[string][]logRecord{}
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("topic %s not read to its end offsets %v in 20 s", schemas.TopicProducts, ends)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			m, err := eventlog.ParseMetadata(r)
			if err != nil {
				t.Fatalf("record %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			}
			if string(r.Key) != m.AggregateID {
				t.Fatalf("record %s/%d@%d: key %q, subject %q", r.Topic, r.Partition, r.Offset, r.Key, m.AggregateID)
			}
			if r.Offset < ends[r.Partition] {
				out[m.AggregateID] = append(out[m.AggregateID], logRecord{offset: r.Offset, version: m.AggregateVersion, id: m.EventID, typ: m.Type})
			}
			if r.Offset == ends[r.Partition]-1 {
				left--
			}
		})
	}
	return out
}

// checkOrder checks one aggregate's records in log order: the first
// occurrences of ce_aggregateversion must be 1, 2, 3, … with the event type
// of each version; a later occurrence of a version already seen must be a
// republication of the same event (same ce_id). It returns the number of
// such duplicates.
func checkOrder(recs []logRecord) (dups int, err error) {
	ids := map[int64]string{}
	next := int64(1)
	for _, r := range recs {
		switch {
		case r.version == next:
			want := "shop.catalog.ProductRestocked"
			if r.version == 1 {
				want = "shop.catalog.ProductRegistered"
			}
			if r.typ != want {
				return dups, fmt.Errorf("version %d at offset %d is a %s, want %s", r.version, r.offset, r.typ, want)
			}
			ids[next] = r.id
			next++
		case r.version < next:
			if ids[r.version] != r.id {
				return dups, fmt.Errorf("two different events with version %d: %s, then %s at offset %d", r.version, ids[r.version], r.id, r.offset)
			}
			dups++
		default:
			return dups, fmt.Errorf("version %d at offset %d right after version %d: a gap or an event out of order", r.version, r.offset, next-1)
		}
	}
	return dups, nil
}

func uniqueVersions(recs []logRecord) map[int64]bool {
	out := map[int64]bool{}
	for _, r := range recs {
		out[r.version] = true
	}
	return out
}

// childLogLevel is the children's log level: warn, or SHOP_TEST_CHILD_LOG.
func childLogLevel() string {
	if l := os.Getenv("SHOP_TEST_CHILD_LOG"); l != "" {
		return l
	}
	return "warn"
}
