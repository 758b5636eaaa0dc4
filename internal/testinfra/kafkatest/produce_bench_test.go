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
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/testinfra/kafkatest"
	"shopstream/internal/testinfra/testenv"
)

// Knobs of BenchmarkProduce.
const (
	envBenchRecords = "SHOP_BENCH_PRODUCE_RECORDS" // records per run, every side; default 200,000
	envBenchSize    = "SHOP_BENCH_PRODUCE_SIZE"    // value size in bytes; default 200 (an Avro event of the shop)
)

// shopLinger is the linger of the outbox relay's producer (internal/app,
// kgo.ProducerLinger in app.Run), its only setting that is not franz-go's
// default.
const shopLinger = 2 * time.Millisecond

// shopProducerOpts are the options of the outbox relay's producer besides
// its seed brokers; franzSettings reads back what the client makes of them.
func shopProducerOpts() []kgo.Opt { return []kgo.Opt{kgo.ProducerLinger(shopLinger)} }

// BenchmarkProduce measures how fast franz-go, configured as the shop's
// outbox relay configures it, writes to the real broker, against Kafka's own
// Java producer driven by kafka-producer-perf-test
// (org.apache.kafka.tools.ProducerPerformance) on the same broker in the
// same run, configured as the relay:
//
//	deploy/kafka/kafka.sh start && export $(deploy/kafka/kafka.sh env)
//	go test -run '^$' -bench Produce -benchtime 3x ./internal/testinfra/kafkatest
//
// Each side writes N records (SHOP_BENCH_PRODUCE_RECORDS, default 200,000)
// of S bytes (SHOP_BENCH_PRODUCE_SIZE, default 200: about the size of the
// shop's Avro events) into a fresh topic of 3 partitions, deleted at the
// end, whose partitions another client has each given one record first
// (see freshTopic). Values are random upper-case letters and keys are null, as
// ProducerPerformance writes them; values are generated before the clock
// starts (ProducerPerformance generates them in its loop).
//
//   - franz-go: one client with the relay's options (shopProducerOpts:
//     linger 2 ms, the rest franz-go's defaults, which franzSettings reads
//     back from the client: acks=all, idempotent, snappy first, batches of
//     at most 1,000,012 bytes, requests of at most 100 MiB, up to 5 produce
//     requests in flight per broker (franz-go's limit when idempotent),
//     50,000 records buffered), created before the clock starts;
//     ProduceAsync of every record as fast as the client takes them, then
//     Flush. Time: first ProduceAsync → Flush returned. Latency:
//     ProduceAsync → the record's promise.
//   - kafka-producer-perf-test, relay settings: `deploy/kafka/kafka.sh
//     perf-produce` with the same N and S, --throughput -1 (the script's),
//     and the same settings translated by javaProps: acks=all,
//     enable.idempotence=true, linger.ms=2, compression.type=snappy,
//     batch.size=1000012, max.request.size=104857600,
//     max.in.flight.requests.per.connection=5; only buffer.memory is left
//     at the Java default, 32 MiB (franz-go bounds records, not bytes: its
//     50,000 are 10 MB of values here). kafka.sh runs it in a JVM with the
//     server defaults, tiered C1+C2 compilation and G1, and a heap of 1 GiB
//     (-XX:+UseG1GC -Xms1g -Xmx1g, SHOP_KAFKA_PERF_JVM_OPTS unset), not in
//     the fast-starting JVM of its other tools.
//   - kafka-producer-perf-test, tool defaults: the old baseline, for
//     comparison: the same tool with acks=all and enable.idempotence=true
//     only, every other setting the Java producer's default (linger.ms=5,
//     batch.size=16384, no compression, max.request.size=1048576, 5
//     requests in flight), in kafka.sh's tool JVM
//     (SHOP_KAFKA_PERF_JVM_OPTS=tools: -XX:TieredStopAtLevel=1, so no C2,
//     -XX:+UseSerialGC, -Xmx256m).
//
// The tool's figures are its own final summary line (time from its first
// send to the last callback; latency from send to callback); the JVM's
// start and the topic's creation are no part of them, its JIT warm-up is:
// each run is a fresh JVM, as each franz-go run is a fresh client whose
// connections are made within its time (raise SHOP_BENCH_PRODUCE_RECORDS
// for runs longer than the warm-up). The script reaches
// the broker at 127.0.0.1:$SHOP_KAFKA_PORT of the installation in
// $SHOP_KAFKA_HOME: they must be those the broker was started with (the
// port is taken from SHOP_TEST_KAFKA_BROKERS when SHOP_KAFKA_PORT is
// unset). Without the script, bash or java, the tool's sides are skipped
// with the reason, and only franz-go's figures are printed.
//
// MB/s is MiB of values per second, as ProducerPerformance counts it. Each
// b.Loop iteration of franz-go is one whole run of N records (its ns/op is
// one run's time: the default -benchtime gives as many runs as fit in 1 s,
// -benchtime 3x three), followed, timer stopped, by one run of the tool
// with the relay's settings and one with its defaults, so that every side
// sees the same load; the runs of each side are averaged. The table printed
// at the end puts the sides' settings and figures side by side, with the
// ratio of franz-go's records/s to each. All clients and the broker share
// this machine's cores: the figures depend on it and on whatever else runs
// there.
func BenchmarkProduce(b *testing.B) {
	brokers := kafkatest.RealBrokers(b)
	n := testenv.Int(b, envBenchRecords, 200_000)
	size := testenv.Int(b, envBenchSize, 200)
	adm := kadm.NewClient(kafkatest.Client(b, brokers))
	warm := kafkatest.Client(b, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ourSettings, err := franzSettings(brokers)
	if err != nil {
		b.Fatal(err)
	}
	perf, perfErr := findPerfTest(brokers)
	var sides []*javaSide
	if perfErr == nil {
		fair, err := javaProps(ourSettings)
		if err != nil {
			b.Fatal(err)
		}
		fairSettings := ourSettings
		fairSettings.buffer = javaDefaults.buffer // the one setting left at the Java default
		sides = []*javaSide{
			{name: "relay-settings", title: "kafka-producer-perf-test, relay settings", settings: fairSettings, props: fair},
			{name: "tool-defaults", title: "kafka-producer-perf-test, tool defaults", jvm: "tools", settings: javaDefaults,
				props: []string{"acks=all", "enable.idempotence=true"}},
		}
	}

	var ours []produceResult
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
			// The baselines right after, so that every side sees the same
			// load; outside the timer: the tool times itself, and the JVM's
			// start and the topic's creation are no part of its figures.
			for _, s := range sides {
				if perfErr != nil {
					break
				}
				topic := freshTopic(b, adm, warm, "perf-test")
				base, jvm, err := perf.run(topic, n, size, s.jvm, s.props)
				if errors.Is(err, errNoJava) {
					perfErr = err
					break
				} else if err != nil {
					b.Fatal(err)
				}
				checkCount(b, adm, topic, n+topicPartitions)
				b.Logf("kafka-producer-perf-test, %s (JVM %s): %s", s.name, jvm, base)
				s.runs, s.jvmLine = append(s.runs, base), jvm
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
	if perfErr != nil {
		sides = nil
	}
	for _, s := range sides {
		b.Run("kafka-producer-perf-test-"+s.name, func(b *testing.B) {
			m, o := mean(s.runs), mean(ours)
			b.ReportMetric(0, "ns/op") // the tool timed itself; b.N means nothing here
			b.ReportMetric(m.recordsPerSec, "records/s")
			b.ReportMetric(m.mbPerSec, "MB/s")
			b.ReportMetric(m.p50, "p50_ms")
			b.ReportMetric(m.p99, "p99_ms")
			b.ReportMetric(o.recordsPerSec/m.recordsPerSec, "franz-go/perf-test")
		})
	}
	if perfErr != nil {
		b.Run("kafka-producer-perf-test", func(b *testing.B) {
			b.Skipf("no kafka-producer-perf-test baseline: %v", perfErr)
		})
	}

	printProduceTable(os.Stdout, brokers, n, size, ourSettings, ours, sides, perfErr)
}

// javaSide is one configuration of kafka-producer-perf-test and its runs.
type javaSide struct {
	name, title string
	jvm         string // SHOP_KAFKA_PERF_JVM_OPTS: "" is kafka.sh's server JVM, "tools" its tool JVM
	settings    producerSettings
	props       []string // producer properties passed to the tool
	runs        []produceResult
	jvmLine     string // Kafka and Java versions and JVM options, as kafka.sh reported them
}

// producerSettings are the settings of a producer that the table compares.
type producerSettings struct {
	acks            string
	idempotent      bool
	linger          time.Duration
	compression     string
	batchMaxBytes   int64
	requestMaxBytes int64
	inFlight        int // produce requests in flight per broker
	buffer          string
}

// javaDefaults are the Java producer's defaults (Kafka 4.x), with acks=all
// and enable.idempotence=true, which are its defaults too.
var javaDefaults = producerSettings{acks: "all", idempotent: true, linger: 5 * time.Millisecond, compression: "none",
	batchMaxBytes: 16384, requestMaxBytes: 1048576, inFlight: 5, buffer: "buffer.memory 33554432 B"}

// franzSettings reads back the settings of a client made with
// shopProducerOpts (the client is not started: nothing is dialled).
func franzSettings(brokers []string) (producerSettings, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, shopProducerOpts()...)...)
	if err != nil {
		return producerSettings{}, err
	}
	defer cl.Close()
	var s producerSettings
	switch cl.OptValue(kgo.RequiredAcks).(kgo.Acks) {
	case kgo.AllISRAcks():
		s.acks = "all"
	case kgo.LeaderAck():
		s.acks = "1"
	case kgo.NoAck():
		s.acks = "0"
	}
	s.idempotent = !cl.OptValue(kgo.DisableIdempotentWrite).(bool)
	s.linger = cl.OptValue(kgo.ProducerLinger).(time.Duration)
	codecs := cl.OptValue(kgo.ProducerBatchCompression).([]kgo.CompressionCodec)
	if len(codecs) > 0 { // the first the broker supports is used: Kafka 4 supports all
		for name, c := range map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
			"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()} {
			if codecs[0] == c {
				s.compression = name
			}
		}
	}
	s.batchMaxBytes = int64(cl.OptValue(kgo.ProducerBatchMaxBytes).(int32))
	s.requestMaxBytes = int64(cl.OptValue(kgo.BrokerMaxWriteBytes).(int32))
	if s.idempotent {
		// franz-go's sink allows 5 idempotent produce requests in flight per
		// broker from Kafka 1.0 on (1 before); MaxProduceRequestsInflightPerBroker
		// applies only without idempotence.
		s.inFlight = 5
	} else {
		s.inFlight = cl.OptValue(kgo.MaxProduceRequestsInflightPerBroker).(int)
	}
	s.buffer = fmt.Sprintf("%d records", cl.OptValue(kgo.MaxBufferedRecords).(int64))
	if b := cl.OptValue(kgo.MaxBufferedBytes).(int64); b > 0 {
		s.buffer += fmt.Sprintf(", %d B", b)
	}
	return s, nil
}

// requiredVersion is the version of module path that go.mod requires ("?"
// if it cannot tell: a test binary's build information lists no modules).
func requiredVersion(path string) string {
	root, err := moduleRoot()
	if err != nil {
		return "?"
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(mod), "\n") {
		if f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "require ")); len(f) >= 2 && f[0] == path {
			return f[1]
		}
	}
	return "?"
}

// javaProps translates s into the Java producer's properties; buffering is
// left at the Java default (buffer.memory bounds bytes, franz-go records).
func javaProps(s producerSettings) ([]string, error) {
	if s.acks == "" || s.compression == "" {
		return nil, fmt.Errorf("franz-go settings %+v: acks or compression not known to javaProps", s)
	}
	if s.linger%time.Millisecond != 0 {
		return nil, fmt.Errorf("linger %v is no whole number of ms (linger.ms)", s.linger)
	}
	return []string{
		"acks=" + s.acks,
		"enable.idempotence=" + strconv.FormatBool(s.idempotent),
		"linger.ms=" + strconv.FormatInt(s.linger.Milliseconds(), 10),
		"compression.type=" + s.compression,
		"batch.size=" + strconv.FormatInt(s.batchMaxBytes, 10),
		"max.request.size=" + strconv.FormatInt(s.requestMaxBytes, 10),
		"max.in.flight.requests.per.connection=" + strconv.Itoa(s.inFlight),
	}, nil
}

// printProduceTable prints the sides' settings and figures side by side,
// and the ratio of franz-go's records/s to each tool side (b.Logf of a
// parent benchmark is shown only with -v).
func printProduceTable(w io.Writer, brokers []string, n, size int, ourSettings producerSettings, ours []produceResult, sides []*javaSide, perfErr error) {
	fmt.Fprintf(w, "\nproduce: %d records of %d B into a fresh topic of 3 partitions per run, broker %s, %d run(s) per side, in turn\n",
		n, size, strings.Join(brokers, ","), len(ours))
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	o := mean(ours)
	franz := "franz-go " + requiredVersion("github.com/twmb/franz-go")
	cols := []string{"franz-go, the outbox relay's settings"}
	client := []string{franz}
	runtimes := []string{fmt.Sprintf("%s, GOMAXPROCS %d", runtime.Version(), runtime.GOMAXPROCS(0))}
	settings := []producerSettings{ourSettings}
	results := []produceResult{o}
	for _, s := range sides {
		cols = append(cols, s.title)
		kafka, jvm, _ := strings.Cut(s.jvmLine, ", JVM options: ")
		client = append(client, "Java producer, "+kafka)
		runtimes = append(runtimes, "JVM "+jvm)
		settings = append(settings, s.settings)
		results = append(results, mean(s.runs))
	}
	row := func(name string, cell func(i int) string) {
		fmt.Fprintf(tw, "  %s", name)
		for i := range cols {
			fmt.Fprintf(tw, "\t%s", cell(i))
		}
		fmt.Fprintln(tw)
	}
	row("", func(i int) string { return cols[i] })
	row("client", func(i int) string { return client[i] })
	row("runtime", func(i int) string { return runtimes[i] })
	row("acks", func(i int) string { return settings[i].acks })
	row("idempotent", func(i int) string { return strconv.FormatBool(settings[i].idempotent) })
	row("linger", func(i int) string { return settings[i].linger.String() })
	row("compression", func(i int) string { return settings[i].compression })
	row("batch max bytes", func(i int) string { return strconv.FormatInt(settings[i].batchMaxBytes, 10) })
	row("request max bytes", func(i int) string { return strconv.FormatInt(settings[i].requestMaxBytes, 10) })
	row("in flight per broker", func(i int) string { return strconv.Itoa(settings[i].inFlight) })
	row("buffer", func(i int) string { return settings[i].buffer })
	row("records/s", func(i int) string { return fmt.Sprintf("%.0f", results[i].recordsPerSec) })
	row("MB/s", func(i int) string { return fmt.Sprintf("%.2f", results[i].mbPerSec) })
	row("latency p50/p95/p99", func(i int) string {
		r := results[i]
		return fmt.Sprintf("%.0f / %.0f / %.0f ms", r.p50, r.p95, r.p99)
	})
	row("cores busy, test process", func(i int) string {
		if i == 0 {
			return fmt.Sprintf("%.2f", results[0].cpu)
		}
		return "(its own JVM)"
	})
	row("ratio franz-go / this", func(i int) string { return fmt.Sprintf("%.2f", o.recordsPerSec/results[i].recordsPerSec) })
	tw.Flush()
	if perfErr != nil {
		fmt.Fprintf(w, "  kafka-producer-perf-test: n/a: %v\n", perfErr)
	}
	fmt.Fprintln(w)
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
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, shopProducerOpts()...)...)
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

func (p *perfTest) cmd(env []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command("bash", append([]string{p.script}, args...)...)
	cmd.Env = append(slices.Clip(p.env), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

// run writes n records of size bytes into topic with ProducerPerformance,
// in the JVM jvm names (SHOP_KAFKA_PERF_JVM_OPTS; "" for kafka.sh's
// default) with the producer properties props, and returns the figures of
// its final summary line and the versions and JVM options kafka.sh reported.
func (p *perfTest) run(topic string, n, size int, jvm string, props []string) (produceResult, string, error) {
	// kafka.sh passes --bootstrap-server when the tool has --command-property
	// (newer 4.x), and --producer-props bootstrap.servers=… otherwise, which
	// a second --producer-props would replace: ask the tool which it is.
	help, out := p.cmd(nil, "run-class", "org.apache.kafka.tools.ProducerPerformance", "--help")
	_ = help.Run() // the tool's --help exits non-zero
	var extra []string
	switch {
	case strings.Contains(out.String(), "java not found"):
		return produceResult{}, "", fmt.Errorf("%w: %s", errNoJava, firstLine(out.String(), "java not found"))
	case strings.Contains(out.String(), "--command-property"):
		extra = append([]string{"--command-property"}, props...)
	case strings.Contains(out.String(), "--producer-props"):
		extra = append([]string{"--producer-props", "bootstrap.servers=127.0.0.1:" + envOf(p.env, "SHOP_KAFKA_PORT", "9092")}, props...)
	default:
		return produceResult{}, "", fmt.Errorf("%s run-class org.apache.kafka.tools.ProducerPerformance --help: unexpected output:\n%s", p.script, out.Bytes())
	}
	args := append([]string{"perf-produce", topic, strconv.Itoa(n), strconv.Itoa(size)}, extra...)
	cmd, out := p.cmd([]string{"SHOP_KAFKA_PERF_JVM_OPTS=" + jvm}, args...)
	if err := cmd.Run(); err != nil {
		if strings.Contains(out.String(), "java not found") {
			return produceResult{}, "", fmt.Errorf("%w: %s", errNoJava, firstLine(out.String(), "java not found"))
		}
		return produceResult{}, "", fmt.Errorf("%s %s: %v (SHOP_KAFKA_HOME and SHOP_KAFKA_PORT must be those the broker was started with)\n%s",
			p.script, strings.Join(args, " "), err, out.Bytes())
	}
	var jvmLine string
	if m := perfJVM.FindSubmatch(out.Bytes()); m != nil {
		jvmLine = string(m[1])
	}
	r, err := parsePerfSummary(out.Bytes(), size)
	return r, jvmLine, err
}

// perfJVM is kafka.sh's line naming the versions and the JVM options of
// ProducerPerformance.
var perfJVM = regexp.MustCompile(`(?m)^kafka\.sh: ProducerPerformance: (kafka .*, JVM options: .*)$`)

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
