package app_test

import (
	"bytes"
	"cmp"
	"context"
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
	"shopstream/internal/testinfra/kafkatest"
	"shopstream/internal/testinfra/latency"
	"shopstream/internal/testinfra/testenv"
	"shopstream/schemas"
)

// Knobs of BenchmarkWritePath.
const (
	envBenchClients = "SHOP_BENCH_CLIENTS"         // concurrent HTTP clients and pgbench clients; default 8
	envBenchPgbench = "SHOP_BENCH_PGBENCH_SECONDS" // pgbench -T; default 5
)

// BenchmarkWritePath measures the write path of the shop against the raw
// speed of the PostgreSQL it runs on, in one run:
//
//   - shop: C clients POST /products over HTTP to the gateway (one
//     transaction per command: read the aggregate row, insert the state row,
//     append the Avro event to the outbox, NOTIFY, commit); the outbox relay
//     publishes to Kafka. It reports the accepted (2xx) commands/s and their
//     latency p50/p99, and the published commands/s: from the first request
//     until the end offsets of shop.catalog.products.v1 have grown by the
//     accepted count.
//   - pgbench: the same C clients run, for a few seconds before the shop's
//     run and again after it, a transaction of the same shape on the same
//     server (BEGIN; INSERT a uuid/bigint/~200-byte jsonb state row; INSERT
//     a ~300-byte bytea outbox row; COMMIT), and the ratios of ours to the
//     mean of the two runs are reported. Without pgbench beside the server
//     binaries this part is skipped, and only our figures are printed.
//
// Every b.Loop iteration is one POST, so the count is set by -benchtime:
//
//	go test -run '^$' -bench WritePath -benchtime 2000x ./internal/app
//
// (-benchtime 10s works too.) SHOP_BENCH_CLIENTS sets C (default 8),
// SHOP_BENCH_PGBENCH_SECONDS pgbench's -T (default 5), and
// SHOP_TEST_KAFKA_BROKERS runs against real Kafka instead of the embedded
// kfake. The stack (kfake or not, the embedded schema registry, FerretDB,
// PostgreSQL with fsync=on) runs in this process except PostgreSQL, so the
// figures depend on the machine and whatever else runs on it; CPU use per
// phase is printed to tell which side saturates.
func BenchmarkWritePath(b *testing.B) {
	clients := testenv.Int(b, envBenchClients, 8)
	pgSeconds := testenv.Int(b, envBenchPgbench, 5)

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

	// pgbench runs before the shop and after it, and the baseline is the
	// mean of the two: a machine whose disk or CPU drifts during the run
	// (these 2 cores are shared) moves both sides alike.
	pgBefore, pgErr := runPgbench(b, e.PostgresURL, clients, pgSeconds)
	var shop shopResult
	b.Run("shop", func(b *testing.B) {
		shop = measureShop(b, base, ds.Stack.Secrets.StaffKey, brokers, clients)
		b.ReportMetric(shop.acceptedRate(), "accepted_cmd/s")
		b.ReportMetric(shop.publishedRate(), "published_cmd/s")
		b.ReportMetric(ms(shop.p50), "p50_ms")
		b.ReportMetric(ms(shop.p99), "p99_ms")
	})
	if shop.accepted == 0 {
		b.Fatal("no command was accepted")
	}
	shop.stateBytes = avgSize(b, e.PostgresURL, `SELECT avg(pg_column_size(state)) FROM catalog.products`)
	shop.recordBytes = sampleRecordSize(b, brokers)

	var pg pgbenchResult
	if pgErr == nil {
		pgAfter, _ := runPgbench(b, e.PostgresURL, clients, pgSeconds)
		pg = pgAfter.around(pgBefore)
	}
	b.Run("pgbench", func(b *testing.B) {
		if pgErr != nil {
			b.Skipf("no pgbench baseline: %v", pgErr)
		}
		b.ReportMetric(0, "ns/op") // pgbench timed itself; b.N means nothing here
		b.ReportMetric(pg.tps, "pgbench_tps")
		b.ReportMetric(shop.acceptedRate()/pg.tps, "accepted/pgbench")
		b.ReportMetric(shop.publishedRate()/pg.tps, "published/pgbench")
	})
	printWritePathTable(os.Stdout, kafkaName, clients, shop, pg, pgErr)
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

// measureShop registers products as staff (staffKey), from clients
// clients at once.
func measureShop(b *testing.B, base, staffKey string, brokers []string, clients int) shopResult {
	tr := &http.Transport{MaxIdleConns: 2 * clients, MaxIdleConnsPerHost: 2 * clients, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := auth.StaffClient(staffKey, tr)
	hc.Timeout = 30 * time.Second
	post := func(i int) (int, string) {
		body := fmt.Sprintf(`{"title": "Maillot domicile Olympique de Marseille 1993, taille L, n°%d", "price_cents": %d, "quantity": %d}`,
			i, 8999+i%1000, 1+i%50)
		resp, err := hc.Post(base+"/products", "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(msg)
	}
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

// sampleRecordSize is the size of the last ProductRegistered record in
// Kafka (value plus headers), to compare with the pgbench outbox row.
func sampleRecordSize(b *testing.B, brokers []string) int {
	from := kafkatest.From(b, brokers, schemas.TopicProducts)
	for p, o := range from[schemas.TopicProducts] {
		if end := o.EpochOffset().Offset; end > 0 {
			from[schemas.TopicProducts][p] = kgo.NewOffset().At(end - 1) // the last record
		}
	}
	recs := kafkatest.Consume(b, brokers, from, 1, 10*time.Second)
	n := len(recs[0].Key) + len(recs[0].Value)
	for _, h := range recs[0].Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

func avgSize(b *testing.B, url, query string) float64 {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var avg float64
	if err := conn.QueryRow(ctx, query).Scan(&avg); err != nil {
		b.Fatalf("%s: %v", query, err)
	}
	return avg
}

// pgbenchSQL is the baseline transaction: one state row (uuid id, bigint
// version, ~200-byte jsonb) and one outbox row (~300-byte bytea), committed
// together, like a command that registers an aggregate. It leaves out what
// the shop does on top: the read of the aggregate row before writing, the
// outbox row's topic, key and headers, and pg_notify.
const pgbenchSQL = `\set v random(1, 1000000000)
BEGIN;
INSERT INTO writepath_bench.state (id, version, state) VALUES (gen_random_uuid(), 1, jsonb_build_object(
  'title', 'Maillot domicile Olympique de Marseille 1993, taille L', 'price_cents', :v::bigint,
  'photo', 'https://cdn.example.org/photos/maillot-om-1993-domicile.jpg', 'stock', 25));
INSERT INTO writepath_bench.outbox (value) VALUES (decode(md5(:v::text) || repeat('a5', 284), 'hex'));
COMMIT;
`

const pgbenchSchema = `
DROP SCHEMA IF EXISTS writepath_bench CASCADE;
CREATE SCHEMA writepath_bench;
CREATE TABLE writepath_bench.state (
	id uuid PRIMARY KEY, version bigint NOT NULL, state jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE writepath_bench.outbox (
	id bigserial PRIMARY KEY, value bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now());`

// pgbenchResult is what pgbench measured.
type pgbenchResult struct {
	path, args           string
	tps, latency         float64 // tps without connection time; average latency in ms
	cpu                  cpuUse
	stateBytes, outBytes float64
	runs                 []float64 // around: each run's tps, in order
}

// around is the baseline of two runs, before (b) and after (r) the shop's:
// their mean tps, latency and CPU, and r's row sizes.
func (r pgbenchResult) around(b pgbenchResult) pgbenchResult {
	mean := func(x, y float64) float64 { return (x + y) / 2 }
	out := r
	out.tps, out.latency, out.runs = mean(b.tps, r.tps), mean(b.latency, r.latency), []float64{b.tps, r.tps}
	out.cpu.self, out.cpu.pg, out.cpu.pgbench = mean(b.cpu.self, r.cpu.self), mean(b.cpu.pg, r.cpu.pg), mean(b.cpu.pgbench, r.cpu.pgbench)
	return out
}

func runPgbench(b *testing.B, url string, clients, seconds int) (pgbenchResult, error) {
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
	_, err = conn.Exec(ctx, pgbenchSchema)
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
	cmd := exec.Command(path, append(args, url)...)
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
	r := pgbenchResult{path: path, args: strings.Join(args[:len(args)-2], " ")}
	r.cpu = sampleCPU().since(cpu0, time.Since(began))
	r.cpu.pgbench = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds() / time.Since(began).Seconds()
	r.tps = parseFloat(b, out.Bytes(), `tps = ([0-9.]+) \(without initial connection time\)`)
	r.latency = parseFloat(b, out.Bytes(), `latency average = ([0-9.]+) ms`)
	r.stateBytes = avgSize(b, url, `SELECT avg(pg_column_size(state)) FROM writepath_bench.state`)
	r.outBytes = avgSize(b, url, `SELECT avg(octet_length(value)) FROM writepath_bench.outbox`)
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

func printWritePathTable(w io.Writer, kafkaName string, clients int, s shopResult, pg pgbenchResult, pgErr error) {
	fmt.Fprintf(w, "\nwrite path: POST /products → PostgreSQL (state row + outbox) → Kafka, %d clients, Kafka: %s\n", clients, kafkaName)
	row := func(name, value, note string) { fmt.Fprintf(w, "  %-27s %14s   %s\n", name, value, note) }
	refused := "none refused"
	if len(s.refused) > 0 {
		refused = fmt.Sprintf("refused (status: count; 0 = transport error): %v; first: %s", s.refused, s.firstRefusal)
	}
	row("commands sent / accepted", fmt.Sprintf("%d / %d", s.sent, s.accepted), refused)
	row("accepted cmd/s", fmt.Sprintf("%.1f", s.acceptedRate()), fmt.Sprintf("2xx over %s, first request → last response", s.took.Round(time.Millisecond)))
	row("published cmd/s", fmt.Sprintf("%.1f", s.publishedRate()), fmt.Sprintf("first request → all in %s, %s", schemas.TopicProducts, s.toKafka.Round(time.Millisecond)))
	row("latency p50 / p99", fmt.Sprintf("%.1f / %.1f ms", ms(s.p50), ms(s.p99)), "accepted requests")
	row("CPU, shop run", "", s.cpu.String())
	if pgErr != nil {
		row("pgbench tps", "n/a", pgErr.Error())
	} else {
		row("pgbench tps", fmt.Sprintf("%.1f", pg.tps), fmt.Sprintf("mean of a run before the shop's (%.1f) and one after (%.1f); latency avg %.2f ms; %s %s",
			pg.runs[0], pg.runs[1], pg.latency, pg.path, pg.args))
		row("ratio accepted / pgbench", fmt.Sprintf("%.2f", s.acceptedRate()/pg.tps), "")
		row("ratio published / pgbench", fmt.Sprintf("%.2f", s.publishedRate()/pg.tps), "")
		row("CPU, pgbench run", "", pg.cpu.String())
	}
	row("row sizes, shop", "", fmt.Sprintf("state jsonb %.0f B, Kafka record key+value+headers %d B", s.stateBytes, s.recordBytes))
	if pgErr == nil {
		row("row sizes, pgbench", "", fmt.Sprintf("state jsonb %.0f B, outbox bytea %.0f B", pg.stateBytes, pg.outBytes))
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
