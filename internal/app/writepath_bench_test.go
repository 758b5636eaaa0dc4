package app_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/app"
	"shopstream/internal/devinfra/devshop"
	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/devinfra/embedded/postgres"
	"shopstream/internal/edge/auth"
	"shopstream/internal/platform/aggregate"
	"shopstream/internal/platform/outbox"
	"shopstream/internal/testinfra/kafkatest"
	"shopstream/internal/testinfra/latency"
	"shopstream/internal/testinfra/testenv"
	"shopstream/schemas"
)

// Knobs of BenchmarkWritePath.
const (
	envBenchClients = "SHOP_BENCH_CLIENTS"         // concurrent HTTP clients and pgbench clients; default 8
	envBenchPgbench = "SHOP_BENCH_PGBENCH_SECONDS" // pgbench -T; default 5
	envBenchRounds  = "SHOP_BENCH_ROUNDS"          // shop runs, each between two pgbench runs; default 3
)

// BenchmarkWritePath measures the write path of the shop against the raw
// speed of the PostgreSQL it runs on, in one run:
//
//   - shop: C clients POST /products over HTTP to the gateway (one
//     pipelined transaction per command: insert the state row, append the
//     Avro event to the outbox, commit; the relay in this process is woken
//     directly); the outbox relay publishes to Kafka. It reports the
//     accepted (2xx) commands/s and their latency p50/p99, and the
//     published commands/s: from the first request until the end offsets
//     of shop.catalog.products.v1 have grown by the accepted count.
//   - pgbench: the same C clients run the shop's transaction on the same
//     server, for a few seconds: BEGIN; INSERT the state row; INSERT the
//     outbox row; COMMIT, into tables made by the shop's own DDL, with the
//     values of one command the shop ran just before (its state document,
//     and its Kafka record's topic, key, value and headers, passed as
//     parameters so that PostgreSQL parses them each time as it does the
//     shop's).
//   - rounds: pgbench, shop, pgbench, shop, …, pgbench. Each shop run's
//     ratio is to the mean of the pgbench runs either side of it, and the
//     headline is the median of the rounds' ratios: the 2 shared cores
//     drift by more than the difference to be measured, and interleaving
//     exposes both sides to the same drift.
//
// Without pgbench beside the server binaries the baseline is skipped, and
// only our figures are printed. Every b.Loop iteration of a shop run is
// one POST, so the count per round is set by -benchtime:
//
//	go test -run '^$' -bench WritePath -benchtime 10000x ./internal/app
//
// (-benchtime 10s works too.) SHOP_BENCH_CLIENTS sets C (default 8),
// SHOP_BENCH_PGBENCH_SECONDS pgbench's -T (default 5), SHOP_BENCH_ROUNDS
// the shop runs (default 3), and SHOP_TEST_KAFKA_BROKERS runs against real
// Kafka instead of the embedded kfake. The stack (kfake or not, the
// embedded schema registry, FerretDB, PostgreSQL with fsync=on) runs in
// this process except PostgreSQL, so the figures depend on the machine and
// whatever else runs on it; CPU use per phase is printed to tell which
// side saturates.
func BenchmarkWritePath(b *testing.B) {
	clients := testenv.Int(b, envBenchClients, 8)
	pgSeconds := testenv.Int(b, envBenchPgbench, 5)
	rounds := testenv.Int(b, envBenchRounds, 3)

	brokers, kafkaName, replication := []string(nil), "kfake (embedded)", int16(1)
	if v := os.Getenv(kafkatest.EnvBrokers); v != "" {
		brokers, kafkaName, replication = strings.Split(v, ","), "Apache Kafka at "+v, -1
	}
	start, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ds, err := devshop.Start(start, devstack.Config{Dir: b.TempDir()}, func(cfg *app.Config) {
		if brokers != nil {
			cfg.Brokers = brokers
		}
		brokers = cfg.Brokers
		cfg.Components, cfg.Replication = []string{app.OutboxRelay, app.Gateway}, replication
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := ds.Stop(context.Background()); err != nil {
			b.Errorf("stop the shop: %v", err)
		}
	})
	base, e := ds.URL, ds.Stack.Endpoints
	poster := newPoster(ds.Stack.Secrets.StaffKey, base, clients)
	defer poster.close()

	shape := sampleCommand(b, poster, e.PostgresURL, brokers)
	var pg []pgbenchResult
	first, pgErr := runPgbench(b, e.PostgresURL, clients, pgSeconds, shape)
	if pgErr == nil {
		pg = append(pg, first)
	}
	shops := make([]shopResult, rounds)
	for i := range rounds {
		b.Run("shop", func(b *testing.B) {
			s := measureShop(b, poster, brokers, clients)
			b.ReportMetric(s.acceptedRate(), "accepted_cmd/s")
			b.ReportMetric(s.publishedRate(), "published_cmd/s")
			b.ReportMetric(ms(s.p50), "p50_ms")
			b.ReportMetric(ms(s.p99), "p99_ms")
			shops[i] = s
		})
		if shops[i].accepted == 0 {
			b.Fatal("no command was accepted")
		}
		if pgErr == nil {
			r, _ := runPgbench(b, e.PostgresURL, clients, pgSeconds, shape)
			pg = append(pg, r)
		}
	}
	sizes := rowSizes{
		state:  scalar[float64](b, e.PostgresURL, `SELECT avg(pg_column_size(state)) FROM catalog.products`),
		record: float64(shape.recordBytes()),
	}
	res := writePathResult{shops: shops, pg: pg, sizes: sizes}
	b.Run("pgbench", func(b *testing.B) {
		if pgErr != nil {
			b.Skipf("no pgbench baseline: %v", pgErr)
		}
		b.ReportMetric(0, "ns/op") // pgbench timed itself; b.N means nothing here
		b.ReportMetric(meanTPS(pg), "pgbench_tps")
		b.ReportMetric(res.median(shopResult.acceptedRate), "accepted/pgbench")
		b.ReportMetric(res.median(shopResult.publishedRate), "published/pgbench")
	})
	printWritePathTable(os.Stdout, kafkaName, clients, res, pgErr)
}

// writePathResult is what the rounds measured: shops[i] ran between pg[i]
// and pg[i+1] (pg is empty without a baseline).
type writePathResult struct {
	shops []shopResult
	pg    []pgbenchResult
	sizes rowSizes // the shop's
}

// rowSizes are the average stored state document and the Kafka record
// (key, value, header keys and values), in bytes.
type rowSizes struct{ state, record float64 }

// ratio is round i's rate (accepted or published) against the mean of the
// pgbench runs either side of it.
func (r writePathResult) ratio(i int, rate func(shopResult) float64) float64 {
	return rate(r.shops[i]) / ((r.pg[i].tps + r.pg[i+1].tps) / 2)
}

// median is the median over the rounds of ratio.
func (r writePathResult) median(rate func(shopResult) float64) float64 {
	rs := make([]float64, len(r.shops))
	for i := range r.shops {
		rs[i] = r.ratio(i, rate)
	}
	slices.Sort(rs)
	if n := len(rs); n%2 == 0 {
		return (rs[n/2-1] + rs[n/2]) / 2
	}
	return rs[len(rs)/2]
}

func meanTPS(pg []pgbenchResult) float64 {
	var sum float64
	for _, r := range pg {
		sum += r.tps
	}
	return sum / float64(len(pg))
}

// poster registers products as staff over keep-alive connections.
type poster struct {
	hc   *http.Client
	base string
	tr   *http.Transport
}

func newPoster(staffKey, base string, clients int) *poster {
	tr := &http.Transport{MaxIdleConns: 2 * clients, MaxIdleConnsPerHost: 2 * clients, IdleConnTimeout: time.Minute}
	hc := auth.StaffClient(staffKey, tr)
	hc.Timeout = 30 * time.Second
	return &poster{hc: hc, base: base, tr: tr}
}

func (p *poster) close() { p.tr.CloseIdleConnections() }

// post registers product i, answering the status and body.
func (p *poster) post(i int) (int, string) {
	body := fmt.Sprintf(`{"title": "Maillot domicile Olympique de Marseille 1993, taille L, n°%d", "price_cents": %d, "quantity": %d}`,
		i, 8999+i%1000, 1+i%50)
	resp, err := p.hc.Post(p.base+"/products", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

// commandShape is what one registration wrote: its state document and the
// record the relay published, the values pgbench's transaction writes.
type commandShape struct {
	state  string // jsonb, as text
	record *kgo.Record
}

func (c commandShape) recordBytes() int {
	n := len(c.record.Key) + len(c.record.Value)
	for _, h := range c.record.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// sampleCommand registers one product and reads back its state row and its
// record in Kafka.
func sampleCommand(b *testing.B, p *poster, pgURL string, brokers []string) commandShape {
	const sampleID = 9_999_999
	if code, msg := p.post(sampleID); code/100 != 2 {
		b.Fatalf("sample POST /products: %d %s", code, msg)
	}
	shape := commandShape{state: scalar[string](b, pgURL, `SELECT state::text FROM catalog.products ORDER BY updated_at DESC LIMIT 1`)}
	from := kafkatest.From(b, brokers, schemas.TopicProducts)
	for p, o := range from[schemas.TopicProducts] {
		if end := o.EpochOffset().Offset; end > 0 {
			from[schemas.TopicProducts][p] = kgo.NewOffset().At(end - 1) // the last record
		}
	}
	shape.record = kafkatest.Consume(b, brokers, from, 1, time.Minute)[0]
	return shape
}

// shopResult is what the shop run measured.
type shopResult struct {
	sent, accepted int
	refused        map[int]int // status (0: transport error) → count
	firstRefusal   string
	took, toKafka  time.Duration // first request → last response / → last event in Kafka
	p50, p99       time.Duration
	cpu            cpuUse
	stateBytes     float64 // average stored size of the state jsonb
	recordBytes    int     // one Kafka record: value + header keys and values
}

func (r shopResult) acceptedRate() float64  { return float64(r.accepted) / r.took.Seconds() }
func (r shopResult) publishedRate() float64 { return float64(r.accepted) / r.toKafka.Seconds() }

// measureShop registers products through p, from clients clients at once.
func measureShop(b *testing.B, p *poster, brokers []string, clients int) shopResult {
	post := p.post
	kc, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer kc.Close()
	adm := kadm.NewClient(kc)
	waitKafka := func(want int64) time.Time {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if productRecords(b, adm) >= want {
				return time.Now()
			}
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d records in %s after 2 min", productRecords(b, adm), want, schemas.TopicProducts)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}

	// Warm up (connections, prepared statements, producer) outside the
	// measurement, and wait until the warm-up is published.
	before := productRecords(b, adm)
	var wg sync.WaitGroup
	var warmErr sync.Once
	for w := range clients {
		wg.Go(func() {
			for i := range 5 {
				if code, msg := post(1_000_000 + w*5 + i); code/100 != 2 {
					warmErr.Do(func() { b.Errorf("warm-up POST /products: %d %s", code, msg) })
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	waitKafka(before + int64(5*clients))
	before = productRecords(b, adm)

	type stats struct {
		lat          []time.Duration
		refused      map[int]int
		firstRefusal string
	}
	per := make([]stats, clients)
	jobs := make(chan int)
	cpu0 := sampleCPU()
	start := time.Now()
	for w := range clients {
		wg.Go(func() {
			s := &per[w]
			s.refused = map[int]int{}
			for i := range jobs {
				t0 := time.Now()
				code, msg := post(i)
				if code/100 == 2 {
					s.lat = append(s.lat, time.Since(t0))
					continue
				}
				s.refused[code]++
				if s.firstRefusal == "" {
					s.firstRefusal = fmt.Sprintf("%d %s", code, strings.TrimSpace(msg))
				}
			}
		})
	}
	sent := 0
	for b.Loop() {
		jobs <- sent
		sent++
	}
	close(jobs)
	wg.Wait()
	took := time.Since(start)

	r := shopResult{sent: sent, took: took, refused: map[int]int{}}
	var lat []time.Duration
	for _, s := range per {
		lat = append(lat, s.lat...)
		for code, n := range s.refused {
			r.refused[code] += n
		}
		r.firstRefusal = cmp.Or(r.firstRefusal, s.firstRefusal)
	}
	r.accepted = len(lat)
	r.toKafka = waitKafka(before + int64(r.accepted)).Sub(start)
	r.cpu = sampleCPU().since(cpu0, r.toKafka)
	sorted := latency.Sort(lat)
	r.p50, r.p99 = sorted.At(50), sorted.At(99)
	if len(r.refused) > 0 {
		b.Errorf("%d of %d commands refused %v; first: %s", sent-r.accepted, sent, r.refused, r.firstRefusal)
	}
	return r
}

// productRecords is the sum of the end offsets of the products topic.
func productRecords(b *testing.B, adm *kadm.Client) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, schemas.TopicProducts)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		b.Fatalf("end offsets of %s: %v", schemas.TopicProducts, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// scalar is the one value query answers on the database at url.
func scalar[T any](b *testing.B, url, query string) T {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var v T
	if err := conn.QueryRow(ctx, query).Scan(&v); err != nil {
		b.Fatalf("%s: %v", query, err)
	}
	return v
}

// pgbenchSQL is the baseline transaction, the shop's registration as
// plain SQL: the state row and the outbox row, committed together. Its
// variables are the values of a command the shop ran (see pgbenchArgs),
// sent as parameters (-M prepared).
const pgbenchSQL = `BEGIN;
INSERT INTO writepath_bench.state (id, version, state) VALUES (gen_random_uuid()::text, 1, :state);
INSERT INTO writepath_bench.records (topic, key, value, headers) VALUES (:topic, :key, :value, :headers);
COMMIT;
`

// pgbenchSchema makes the baseline's tables with the shop's own DDL: a
// state table like every aggregate's, and a copy of the outbox.
func pgbenchSchema() string {
	return "DROP SCHEMA IF EXISTS writepath_bench CASCADE; CREATE SCHEMA writepath_bench; " +
		aggregate.TableSQL("writepath_bench.state") + "; " +
		strings.ReplaceAll(outbox.Migrations()[0].SQL, "outbox", "writepath_bench")
}

// pgbenchArgs defines the script's variables from the sampled command, the
// outbox row's as the shop stores them (outbox.Queue).
func pgbenchArgs(b *testing.B, shape commandShape) []string {
	var batch pgx.Batch
	if err := outbox.Queue(&batch, shape.record); err != nil {
		b.Fatal(err)
	}
	args := batch.QueuedQueries[0].Arguments // topic, key, value, headers
	return []string{
		"-D", "state=" + shape.state,
		"-D", "topic=" + args[0].(string),
		"-D", "key=\\x" + hex.EncodeToString(args[1].([]byte)),
		"-D", "value=\\x" + hex.EncodeToString(args[2].([]byte)),
		"-D", "headers=" + string(args[3].([]byte)),
	}
}

// pgbenchResult is what one pgbench run measured.
type pgbenchResult struct {
	path, args           string
	tps, latency         float64 // tps without connection time; average latency in ms
	cpu                  cpuUse
	stateBytes, rowBytes float64 // average state jsonb; outbox row's key, value and headers
}

func runPgbench(b *testing.B, url string, clients, seconds int, shape commandShape) (pgbenchResult, error) {
	path, err := postgres.Tool("pgbench")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, postgres.ErrBinariesNotFound) {
			fmt.Printf("pgbench not found, no baseline: %v\n", err)
			return pgbenchResult{}, err
		}
		b.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	_, err = conn.Exec(ctx, pgbenchSchema())
	conn.Close(ctx)
	if err != nil {
		b.Fatalf("pgbench tables: %v", err)
	}
	script := filepath.Join(b.TempDir(), "writepath.sql")
	if err := os.WriteFile(script, []byte(pgbenchSQL), 0o644); err != nil {
		b.Fatal(err)
	}
	args := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(clients, runtime.NumCPU())),
		"-T", strconv.Itoa(seconds), "-f", script}
	cmd := exec.Command(path, slices.Concat(args, pgbenchArgs(b, shape), []string{url})...)
	for _, kv := range os.Environ() { // no PGHOST, PGOPTIONS… from the caller
		if !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cpu0 := sampleCPU()
	began := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s %s: %v\n%s", path, strings.Join(args, " "), err, out.Bytes())
	}
	r := pgbenchResult{path: path, args: strings.Join(args[:len(args)-2], " ") + " -D state=… -D topic=… -D key=… -D value=… -D headers=…"}
	r.cpu = sampleCPU().since(cpu0, time.Since(began))
	r.cpu.pgbench = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds() / time.Since(began).Seconds()
	r.tps = parseFloat(b, out.Bytes(), `tps = ([0-9.]+) \(without initial connection time\)`)
	r.latency = parseFloat(b, out.Bytes(), `latency average = ([0-9.]+) ms`)
	r.stateBytes = scalar[float64](b, url, `SELECT avg(pg_column_size(state)) FROM writepath_bench.state`)
	r.rowBytes = scalar[float64](b, url, `SELECT avg(octet_length(key) + octet_length(value) + octet_length(headers::text)) FROM writepath_bench.records`)
	return r, nil
}

func parseFloat(b *testing.B, out []byte, re string) float64 {
	m := regexp.MustCompile(re).FindSubmatch(out)
	if m == nil {
		b.Fatalf("pgbench output has no %q:\n%s", re, out)
	}
	f, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

func printWritePathTable(w io.Writer, kafkaName string, clients int, r writePathResult, pgErr error) {
	fmt.Fprintf(w, "\nwrite path: POST /products → PostgreSQL (state row + outbox) → Kafka, %d clients, Kafka: %s, %d rounds\n", clients, kafkaName, len(r.shops))
	row := func(name, value, note string) { fmt.Fprintf(w, "  %-27s %14s   %s\n", name, value, note) }
	for i, s := range r.shops {
		refused := "none refused"
		if len(s.refused) > 0 {
			refused = fmt.Sprintf("refused (status: count; 0 = transport error): %v; first: %s", s.refused, s.firstRefusal)
		}
		row(fmt.Sprintf("round %d: sent / accepted", i+1), fmt.Sprintf("%d / %d", s.sent, s.accepted), refused)
		row("  accepted cmd/s", fmt.Sprintf("%.1f", s.acceptedRate()), fmt.Sprintf("2xx over %s, first request → last response; p50 %.1f ms, p99 %.1f ms",
			s.took.Round(time.Millisecond), ms(s.p50), ms(s.p99)))
		row("  published cmd/s", fmt.Sprintf("%.1f", s.publishedRate()), fmt.Sprintf("first request → all in %s, %s", schemas.TopicProducts, s.toKafka.Round(time.Millisecond)))
		row("  CPU", "", s.cpu.String())
		if pgErr == nil {
			row("  pgbench tps either side", fmt.Sprintf("%.1f, %.1f", r.pg[i].tps, r.pg[i+1].tps), "")
			row("  ratio accepted / pgbench", fmt.Sprintf("%.2f", r.ratio(i, shopResult.acceptedRate)), "to the mean of the two")
		}
	}
	if pgErr != nil {
		row("pgbench tps", "n/a", pgErr.Error())
	} else {
		var runs []string
		for _, p := range r.pg {
			runs = append(runs, fmt.Sprintf("%.1f", p.tps))
		}
		last := r.pg[len(r.pg)-1]
		row("pgbench tps", fmt.Sprintf("%.1f", meanTPS(r.pg)), fmt.Sprintf("mean of %d runs (%s); last run: latency avg %.2f ms, %s; %s %s",
			len(r.pg), strings.Join(runs, ", "), last.latency, last.cpu, last.path, last.args))
		row("ratio accepted / pgbench", fmt.Sprintf("%.2f", r.median(shopResult.acceptedRate)), fmt.Sprintf("median of the %d rounds' ratios", len(r.shops)))
		row("ratio published / pgbench", fmt.Sprintf("%.2f", r.median(shopResult.publishedRate)), "")
	}
	row("row sizes, shop", "", fmt.Sprintf("state jsonb %.0f B, Kafka record key+value+headers %.0f B", r.sizes.state, r.sizes.record))
	if pgErr == nil {
		row("row sizes, pgbench", "", fmt.Sprintf("state jsonb %.0f B, outbox row key+value+headers (as JSON) %.0f B: the sample's", r.pg[0].stateBytes, r.pg[0].rowBytes))
	}
	fmt.Fprintln(w)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cpuTicks is cumulative CPU time, in clock ticks, of this process (the
// gateway, the relay, the embedded Kafka, registry and MongoDB, and the
// benchmark's clients) and of the PostgreSQL server (the postmaster, its
// live children, and the children it reaped). It reads /proc; elsewhere it
// is zero and printed as unknown.
type cpuTicks struct {
	ok       bool
	self, pg int64
}

// cpuUse is CPU time over wall time, in cores.
type cpuUse struct {
	ok                bool
	self, pg, pgbench float64
}

func (c cpuUse) String() string {
	if !c.ok {
		return "CPU use unknown (no /proc)"
	}
	s := fmt.Sprintf("cores busy: test process (shop, kfake, FerretDB, clients) %.2f, postgres %.2f", c.self, c.pg)
	if c.pgbench > 0 {
		s += fmt.Sprintf(", pgbench %.2f", c.pgbench)
	}
	return s + fmt.Sprintf(" (of %d)", runtime.NumCPU())
}

const clockTicks = 100 // USER_HZ on Linux

func sampleCPU() cpuTicks {
	self := os.Getpid()
	type proc struct {
		ppid        int
		comm        string
		own, reaped int64
	}
	procs := map[int]proc{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return cpuTicks{}
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid … utime(14) stime(15) cutime(16) cstime(17)
		lp, rp := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
		if lp < 0 || rp < lp {
			continue
		}
		f := strings.Fields(string(raw[rp+1:]))
		if len(f) < 15 {
			continue
		}
		num := func(i int) int64 { n, _ := strconv.ParseInt(f[i-3], 10, 64); return n }
		procs[pid] = proc{ppid: int(num(4)), comm: string(raw[lp+1 : rp]), own: num(14) + num(15), reaped: num(16) + num(17)}
	}
	t := cpuTicks{ok: true, self: procs[self].own}
	for pid, p := range procs {
		if p.ppid != self || p.comm != "postgres" {
			continue
		}
		t.pg += p.own + p.reaped
		for _, c := range procs {
			if c.ppid == pid {
				t.pg += c.own + c.reaped
			}
		}
	}
	return t
}

func (t cpuTicks) since(t0 cpuTicks, wall time.Duration) cpuUse {
	if !t.ok || !t0.ok {
		return cpuUse{}
	}
	secs := wall.Seconds()
	return cpuUse{ok: true,
		self: float64(t.self-t0.self) / clockTicks / secs,
		pg:   float64(t.pg-t0.pg) / clockTicks / secs,
	}
}
