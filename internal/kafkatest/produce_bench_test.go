package kafkatest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/kafkatest"
	"shopstream/internal/testenv"
)

// Knobs of BenchmarkProduce.
const (
	envBenchRecords = "SHOP_BENCH_PRODUCE_RECORDS" // records per run, both sides; default 200,000
	envBenchSize    = "SHOP_BENCH_PRODUCE_SIZE"    // value size in bytes; default 200 (an Avro event of the shop)
)

// shopLinger is the linger of the outbox relay's producer (internal/app,
// kgo.ProducerLinger in app.Run); the rest of its settings are franz-go's
// defaults: idempotent, acks=all, snappy compression, one in-flight produce
// request per broker.
const shopLinger = 2 * time.Millisecond

// BenchmarkProduce measures how fast franz-go, configured as the shop's
// producer, writes to the real broker, against Kafka's own Java producer
// driven by kafka-producer-perf-test (org.apache.kafka.tools.ProducerPerformance)
// on the same broker in the same run:
//
//	deploy/kafka/kafka.sh start && export $(deploy/kafka/kafka.sh env)
//	go test -run '^$' -bench Produce ./internal/kafkatest
//
// Each side writes N records (SHOP_BENCH_PRODUCE_RECORDS, default 200,000)
// of S bytes (SHOP_BENCH_PRODUCE_SIZE, default 200: about the size of the
// shop's Avro events) into a fresh topic of 3 partitions, deleted at the
// end, whose partitions another client has each given one record first
// (see freshTopic). Values are random upper-case letters and keys are null, as
// ProducerPerformance writes them; values are generated before the clock
// starts (ProducerPerformance generates them in its loop).
//
//   - franz-go: one client with the shop's producer settings (shopLinger),
//     created before the clock starts; ProduceAsync of every record as fast
//     as the client takes them, then Flush. Time: first ProduceAsync →
//     Flush returned. Latency: ProduceAsync → the record's promise.
//   - kafka-producer-perf-test: `deploy/kafka/kafka.sh perf-produce` with
//     the same N and S, --throughput -1 (the script's), acks=all and
//     enable.idempotence=true; every other setting is the Java producer's
//     default (linger.ms=5, batch.size=16384, no compression, up to 5
//     requests in flight), in the JVM kafka.sh runs its tools in (tuned to
//     start fast: -XX:TieredStopAtLevel=1, so no C2 compiler,
//     -XX:+UseSerialGC, -Xmx256m). Its figures are its own final summary line
//     (time from its first send to the last callback; latency from send to
//     callback). The script reaches the broker at 127.0.0.1:$SHOP_KAFKA_PORT
//     of the installation in $SHOP_KAFKA_HOME: they must be those the broker
//     was started with (the port is taken from SHOP_TEST_KAFKA_BROKERS when
//     SHOP_KAFKA_PORT is unset). Without the script, bash or java, this part
//     is skipped with the reason, and only franz-go's figures are printed.
//
// MB/s is MiB of values per second, as ProducerPerformance counts it. Each
// b.Loop iteration of franz-go is one whole run of N records (its ns/op is
// one run's time: the default -benchtime gives as many runs as fit in 1 s,
// -benchtime 3x three), followed, timer stopped, by one run of the tool, so
// that both sides see the same load; the runs of each side are averaged.
// Both clients and the broker share this machine's cores: the figures
// depend on it and on whatever else runs there.
func BenchmarkProduce(b *testing.B) {
	brokers := kafkatest.RealBrokers(b)
	n := testenv.Int(b, envBenchRecords, 200_000)
	size := testenv.Int(b, envBenchSize, 200)
	adm := kadm.NewClient(kafkatest.Client(b, brokers))
	warm := kafkatest.Client(b, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	perf, perfErr := findPerfTest(brokers)

	var ours, theirs []produceResult
	b.Run("franz-go", func(b *testing.B) {
		values := randomLetters(n * size)
		for b.Loop() {
			b.StopTimer()
			topic := freshTopic(b, adm, warm, "franz-go")
			b.StartTimer()
			r := produceFranz(b, brokers, topic, values, n, size)
			b.StopTimer()
			checkCount(b, adm, topic, n+topicPartitions)
			b.Logf("franz-go: %s", r)
			ours = append(ours, r)
			// The baseline right after, so that both sides see the same
			// load; outside the timer: the tool times itself, and the JVM's
			// start and the topic's creation are no part of its figures.
			if perfErr == nil {
				topic := freshTopic(b, adm, warm, "perf-test")
				base, err := perf.run(topic, n, size)
				if errors.Is(err, errNoJava) {
					perfErr, theirs = err, nil
				} else if err != nil {
					b.Fatal(err)
				} else {
					checkCount(b, adm, topic, n+topicPartitions)
					b.Logf("kafka-producer-perf-test: %s", base)
					theirs = append(theirs, base)
				}
			}
			b.StartTimer()
		}
		m := mean(ours)
		b.ReportMetric(m.recordsPerSec, "records/s")
		b.ReportMetric(m.mbPerSec, "MB/s")
		b.ReportMetric(m.p50, "p50_ms")
		b.ReportMetric(m.p99, "p99_ms")
	})
	if len(ours) == 0 {
		return // franz-go failed; its error is reported
	}
	b.Run("kafka-producer-perf-test", func(b *testing.B) {
		if perfErr != nil {
			b.Skipf("no kafka-producer-perf-test baseline: %v", perfErr)
		}
		m, o := mean(theirs), mean(ours)
		b.ReportMetric(0, "ns/op") // the tool timed itself; b.N means nothing here
		b.ReportMetric(m.recordsPerSec, "records/s")
		b.ReportMetric(m.mbPerSec, "MB/s")
		b.ReportMetric(m.p50, "p50_ms")
		b.ReportMetric(m.p99, "p99_ms")
		b.ReportMetric(o.recordsPerSec/m.recordsPerSec, "franz-go/perf-test")
	})

	printProduceTable(os.Stdout, brokers, n, size, ours, theirs, perfErr)
}

// printProduceTable prints both sides and their ratio (b.Logf of a parent
// benchmark is shown only with -v).
func printProduceTable(w io.Writer, brokers []string, n, size int, ours, theirs []produceResult, perfErr error) {
	o := mean(ours)
	fmt.Fprintf(w, "\nproduce: %d records of %d B into a fresh topic of 3 partitions, acks=all, idempotent, broker %s, %d run(s) per side\n",
		n, size, strings.Join(brokers, ","), len(ours))
	row := func(name string, r produceResult, note string) {
		fmt.Fprintf(w, "  %-26s %10.0f records/s %8.2f MB/s   latency p50 %4.0f ms, p95 %4.0f ms, p99 %4.0f ms   %s\n",
			name, r.recordsPerSec, r.mbPerSec, r.p50, r.p95, r.p99, note)
	}
	row("franz-go", o, fmt.Sprintf("shop settings: linger %v, snappy, 1 request in flight; %.2f cores busy in the test process", shopLinger, o.cpu))
	if len(theirs) == 0 {
		fmt.Fprintf(w, "  %-26s n/a: %v\n\n", "kafka-producer-perf-test", perfErr)
		return
	}
	t := mean(theirs)
	row("kafka-producer-perf-test", t, "Java producer defaults: linger.ms=5, batch.size=16384, no compression; kafka.sh's tool JVM: C1 only, SerialGC, 256 MB heap")
	fmt.Fprintf(w, "  %-26s %10.2f\n\n", "ratio franz-go/perf-test", o.recordsPerSec/t.recordsPerSec)
}

// produceResult is one run's figures; latencies in ms.
type produceResult struct {
	records, bytes          int64
	took                    time.Duration
	recordsPerSec, mbPerSec float64
	avg, p50, p95, p99, max float64
	cpu                     float64 // cores busy in this process (franz-go only)
}

func (r produceResult) String() string {
	s := fmt.Sprintf("%d records in %v: %.0f records/s, %.2f MB/s, latency avg %.1f ms, p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, max %.0f ms",
		r.records, r.took.Round(time.Millisecond), r.recordsPerSec, r.mbPerSec, r.avg, r.p50, r.p95, r.p99, r.max)
	if r.cpu > 0 {
		s += fmt.Sprintf(", %.2f cores busy in the test process", r.cpu)
	}
	return s
}

// mean averages runs (rates over the total time, latencies run by run).
func mean(rs []produceResult) produceResult {
	var m produceResult
	if len(rs) == 0 {
		return m
	}
	var secs float64
	for _, r := range rs {
		m.records += r.records
		m.bytes += r.bytes
		secs += float64(r.records) / r.recordsPerSec
		m.avg += r.avg
		m.p50 += r.p50
		m.p95 += r.p95
		m.p99 += r.p99
		m.max = max(m.max, r.max)
		m.cpu += r.cpu
	}
	k := float64(len(rs))
	m.took = time.Duration(secs * float64(time.Second))
	m.recordsPerSec = float64(m.records) / secs
	m.mbPerSec = float64(m.bytes) / secs / (1 << 20)
	m.avg, m.p50, m.p95, m.p99, m.cpu = m.avg/k, m.p50/k, m.p95/k, m.p99/k, m.cpu/k
	return m
}

// randomLetters returns n random upper-case letters, as ProducerPerformance
// fills its values.
func randomLetters(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]byte, n)
	for i := range out {
		out[i] = byte('A' + r.IntN(26))
	}
	return out
}

// produceFranz writes n records of size bytes, cut from values, to topic
// with the shop's producer settings.
func produceFranz(b *testing.B, brokers []string, topic string, values []byte, n, size int) produceResult {
	b.StopTimer()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(shopLinger))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	lat := make([]int64, n) // µs, ProduceAsync → promise
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			errOnce.Do(func() { firstErr = err })
			return
		}
		lat[done.Add(1)-1] = time.Since(r.Timestamp).Microseconds()
	}
	cpu0 := cpuTime()
	b.StartTimer()
	began := time.Now()
	for i := range n {
		// The client stamps Timestamp with time.Now() (monotonic clock
		// included) when it takes the record.
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: values[i*size : (i+1)*size : (i+1)*size]}, promise)
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatalf("flush: %v", err)
	}
	took := time.Since(began)
	b.StopTimer()
	cpu := (cpuTime() - cpu0).Seconds() / took.Seconds()
	if firstErr != nil {
		b.Fatalf("produce: %v", firstErr)
	}
	if int(done.Load()) != n {
		b.Fatalf("%d of %d records acknowledged", done.Load(), n)
	}
	r := produceResult{records: int64(n), bytes: int64(n * size), took: took,
		recordsPerSec: float64(n) / took.Seconds(), mbPerSec: float64(n*size) / took.Seconds() / (1 << 20), cpu: cpu}
	slices.Sort(lat)
	var sum int64
	for _, l := range lat {
		sum += l
	}
	at := func(p float64) float64 { return float64(lat[int(float64(n)*p)]) / 1000 }
	r.avg, r.p50, r.p95, r.p99, r.max = float64(sum)/float64(n)/1000, at(0.50), at(0.95), at(0.99), float64(lat[n-1])/1000
	return r
}

// cpuTime is the CPU time (user and system) of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// topicPartitions is the partition count of the benchmark's topics.
const topicPartitions = 3

// freshTopic creates a new topic of topicPartitions partitions, waits until
// each has a leader and has taken one warm-up record from warm, and deletes
// it when b ends. (A partition just created can refuse the first produce
// while the broker creates its log; franz-go then refreshes its metadata no
// sooner than MetadataMinAge, 5 s by default, after the last refresh: a
// stall of a fresh topic, not of the producer, that the warm-up keeps out
// of both sides' figures. The measured clients still start cold.)
func freshTopic(b *testing.B, adm *kadm.Client, warm *kgo.Client, side string) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := fmt.Sprintf("bench.produce.%s.%d", side, time.Now().UnixNano())
	resp, err := adm.CreateTopic(ctx, topicPartitions, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		b.Fatalf("create topic %s: %v", topic, err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopics(ctx, topic); err != nil {
			b.Logf("delete topic %s: %v", topic, err)
		}
	})
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			if t, ok := md.Topics[topic]; ok && t.Err == nil && len(t.Partitions) == topicPartitions && !slices.ContainsFunc(t.Partitions.Sorted(), func(p kadm.PartitionDetail) bool { return p.Leader < 0 || p.Err != nil }) {
				break
			}
		}
		select {
		case <-ctx.Done():
			b.Fatalf("topic %s has no leaders after 1 min (last error: %v)", topic, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	recs := make([]*kgo.Record, topicPartitions)
	for p := range recs {
		recs[p] = &kgo.Record{Topic: topic, Partition: int32(p), Value: []byte("warm-up")}
	}
	if err := warm.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatalf("warm-up records to %s: %v", topic, err)
	}
	return topic
}

// checkCount fails b unless topic holds exactly n records.
func checkCount(b *testing.B, adm *kadm.Client, topic string, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		b.Fatalf("end offsets of %s: %v", topic, err)
	}
	var got int64
	ends.Each(func(o kadm.ListedOffset) { got += o.Offset })
	if got != int64(n) {
		b.Fatalf("%s holds %d records, want %d", topic, got, n)
	}
}

// perfTest runs kafka-producer-perf-test through deploy/kafka/kafka.sh.
type perfTest struct {
	script string
	env    []string
}

// errNoJava is the script's complaint that it has no java to run.
var errNoJava = errors.New("java not found")

// findPerfTest locates deploy/kafka/kafka.sh and bash, and the environment
// that makes the script reach brokers; the error names what is missing.
func findPerfTest(brokers []string) (*perfTest, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	script := filepath.Join(root, "deploy", "kafka", "kafka.sh")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("script %s not found: %w", script, err)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		return nil, fmt.Errorf("bash (to run %s) not found: %w", script, err)
	}
	if len(brokers) != 1 {
		return nil, fmt.Errorf("%s=%s: kafka.sh perf-produce drives its own single local broker, not %d brokers", kafkatest.EnvBrokers, strings.Join(brokers, ","), len(brokers))
	}
	host, port, err := net.SplitHostPort(brokers[0])
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w", kafkatest.EnvBrokers, brokers[0], err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%s=%s: kafka.sh perf-produce reaches 127.0.0.1 only", kafkatest.EnvBrokers, brokers[0])
	}
	env := os.Environ()
	switch p := os.Getenv("SHOP_KAFKA_PORT"); {
	case p == "":
		env = append(env, "SHOP_KAFKA_PORT="+port)
	case p != port:
		return nil, fmt.Errorf("SHOP_KAFKA_PORT=%s but %s=%s: the script would write to another broker", p, kafkatest.EnvBrokers, brokers[0])
	}
	return &perfTest{script: script, env: env}, nil
}

// moduleRoot is the directory of go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory, so neither is deploy/kafka/kafka.sh")
		}
		dir = parent
	}
}

func (p *perfTest) cmd(args ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command("bash", append([]string{p.script}, args...)...)
	cmd.Env = p.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

// run writes n records of size bytes into topic with ProducerPerformance,
// and returns the figures of its final summary line.
func (p *perfTest) run(topic string, n, size int) (produceResult, error) {
	props := []string{"acks=all", "enable.idempotence=true"}
	// kafka.sh passes --bootstrap-server when the tool has --command-property
	// (newer 4.x), and --producer-props bootstrap.servers=… otherwise, which
	// a second --producer-props would replace: ask the tool which it is.
	help, out := p.cmd("run-class", "org.apache.kafka.tools.ProducerPerformance", "--help")
	_ = help.Run() // the tool's --help exits non-zero
	var extra []string
	switch {
	case strings.Contains(out.String(), "java not found"):
		return produceResult{}, fmt.Errorf("%w: %s", errNoJava, firstLine(out.String(), "java not found"))
	case strings.Contains(out.String(), "--command-property"):
		extra = append([]string{"--command-property"}, props...)
	case strings.Contains(out.String(), "--producer-props"):
		extra = append([]string{"--producer-props", "bootstrap.servers=127.0.0.1:" + envOf(p.env, "SHOP_KAFKA_PORT", "9092")}, props...)
	default:
		return produceResult{}, fmt.Errorf("%s run-class org.apache.kafka.tools.ProducerPerformance --help: unexpected output:\n%s", p.script, out.Bytes())
	}
	args := append([]string{"perf-produce", topic, strconv.Itoa(n), strconv.Itoa(size)}, extra...)
	cmd, out := p.cmd(args...)
	if err := cmd.Run(); err != nil {
		if strings.Contains(out.String(), "java not found") {
			return produceResult{}, fmt.Errorf("%w: %s", errNoJava, firstLine(out.String(), "java not found"))
		}
		return produceResult{}, fmt.Errorf("%s %s: %v (SHOP_KAFKA_HOME and SHOP_KAFKA_PORT must be those the broker was started with)\n%s",
			p.script, strings.Join(args, " "), err, out.Bytes())
	}
	return parsePerfSummary(out.Bytes(), size)
}

// perfSummary is ProducerPerformance's final line, e.g.
//
//	200000 records sent, 96339.113680 records/sec (18.38 MB/sec), 1027.73 ms avg latency, 1685.00 ms max latency, 1069 ms 50th, 1574 ms 95th, 1647 ms 99th, 1678 ms 99.9th.
var perfSummary = regexp.MustCompile(`(?m)^(\d+) records sent, ([0-9.]+) records/sec \(([0-9.]+) MB/sec\), ([0-9.]+) ms avg latency, ([0-9.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th`)

func parsePerfSummary(out []byte, size int) (produceResult, error) {
	all := perfSummary.FindAllSubmatch(out, -1)
	if all == nil {
		return produceResult{}, fmt.Errorf("no summary line in kafka-producer-perf-test's output:\n%s", out)
	}
	m := all[len(all)-1]
	f := make([]float64, len(m))
	for i := 1; i < len(m); i++ {
		v, err := strconv.ParseFloat(string(m[i]), 64)
		if err != nil {
			return produceResult{}, fmt.Errorf("summary line %q: %w", m[0], err)
		}
		f[i] = v
	}
	r := produceResult{records: int64(f[1]), bytes: int64(f[1]) * int64(size), recordsPerSec: f[2], mbPerSec: f[3],
		avg: f[4], max: f[5], p50: f[6], p95: f[7], p99: f[8]}
	r.took = time.Duration(f[1] / f[2] * float64(time.Second))
	return r, nil
}

func firstLine(out, with string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, with) {
			return strings.TrimSpace(l)
		}
	}
	return with
}

func envOf(env []string, name, def string) string {
	for i := len(env) - 1; i >= 0; i-- { // the last one wins, as in exec
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return def
}
