package clients_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/app"
	"shopstream/internal/devinfra/devshop"
	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/platform/kafkasec"
	"shopstream/internal/testinfra/kafkatest"
	"shopstream/internal/testinfra/testenv"
	"shopstream/internal/tools/loadtest"
	"shopstream/internal/tools/loadtest/invariants"
	"shopstream/schemas"
)

// EnvPython names the Python interpreter that has the requirements of
// python/requirements.txt (.ci/run's virtual environment); default python3.
const EnvPython = "SHOP_TEST_PYTHON"

// The stock Python and Node consumers (python/consume.py, node/consume.mjs,
// at their libraries' defaults) decode every record a short Black Friday
// load writes to every topic, on the real Apache Kafka broker, with the
// shop's embedded schema registry: each exits 0 and reports, for every
// topic, as many records as franz-go reads over the same offsets, all
// decoded. Everything goes through the broker's SASL_SSL listener
// (SCRAM-SHA-512 over TLS, ACLs): the shop as the broker's admin, each
// consumer as a principal of its own that may only read the shop's topics
// and use groups named shop-clients-….
func TestConsumersDecodeEveryTopic(t *testing.T) {
	if os.Getenv(kafkatest.EnvBrokers) == "" {
		t.Skip(kafkatest.EnvBrokers + " is unset: the Python and Node consumers are tested against real Apache Kafka only (.ci/run sets it)")
	}
	brokers := kafkatest.RealBrokers(t)
	python, node := tools(t)
	kafkatest.Exclusive(t, brokers)

	// The broker is shared with other tests and earlier runs, whose records
	// carry other (stopped) registries' schema ids: the consumers read only
	// from this instant on.
	since := time.Now().UnixMilli()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	stack, err := devstack.Start(t.Context(), devstack.Config{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := stack.Stop(context.WithoutCancel(t.Context())); err != nil {
			t.Errorf("stop the stack: %v", err)
		}
	}()
	secure, adminSec := kafkatest.SecureUser(t, brokers, kafkatest.Admin, nil)
	adminOpts, err := adminSec.Opts()
	if err != nil {
		t.Fatal(err)
	}
	reader := fmt.Sprintf("shop-clients-%d", time.Now().UnixNano())
	_, readerSec := kafkatest.SecureUser(t, brokers, reader, kadm.NewACLs().Allow("User:"+reader).
		Topics("shop.").Groups("shop-clients-").ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpRead, kadm.OpDescribe))
	t.Cleanup(func() {
		adm := kadm.NewClient(kafkatest.Client(t, brokers))
		_, _ = adm.DeleteACLs(context.Background(), kadm.NewACLs().Allow("User:"+reader).AnyResource().
			ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny).AllowHosts())
		_, _ = adm.AlterUserSCRAMs(context.Background(), []kadm.DeleteSCRAM{{User: reader, Mechanism: kadm.ScramSha512}}, nil)
	})
	e := stack.Endpoints
	e.Brokers = secure
	sh := startShop(t, e, stack.Secrets, adminSec, log)

	// ≈15 s of Black Friday: orders paid by card and SEPA, reviews, carts.
	rep, err := loadtest.Run(t.Context(), loadtest.Config{
		Target:   sh.url,
		StaffKey: stack.Secrets.StaffKey,
		Profile:  loadtest.Profile{Name: loadtest.BlackFriday, BaseRPS: 3, SpikeX: 10, SpikeFor: 5 * time.Second, Duration: 15 * time.Second, Seed: 1},
		Sources: invariants.Sources{Brokers: secure, Kafka: adminOpts, RegistryURL: e.RegistryURL, MongoURI: e.MongoURI, MongoDB: "shop",
			CardPSPURL: e.CardPSPURL, SepaBankURL: e.SepaBankURL, MailDir: e.MailDir},
		EmailQuota: int(app.DefaultEmailRate), DrainTimeout: 3 * time.Minute, Logger: log,
	})
	switch {
	case errors.Is(err, loadtest.ErrInvariants):
		t.Logf("loadtest: %v (not what this test checks)", err) // e.g. I4 on a broker with an earlier run's projector groups
	case err != nil:
		t.Fatalf("loadtest: %v", err)
	}
	t.Logf("load: %d requests, %d orders accepted, %d confirmed, %d cancelled, drained %v",
		rep.Totals.Requests, rep.Totals.OrdersAccepted, rep.Totals.OrdersConfirmed, rep.Totals.OrdersCancelled, rep.Drain.Drained)
	// Stopped, the shop writes nothing more: every reader sees the same
	// end offsets. The registry stays up, in the stack.
	sh.stop()

	want := count(t, brokers, since)
	for _, topic := range topicNames() {
		if want[topic] == 0 {
			t.Fatalf("the load wrote no record to %s: nothing to decode there", topic)
		}
	}
	t.Logf("franz-go reads, per topic, since %d: %v", since, want)

	var summary strings.Builder
	fmt.Fprintf(&summary, "stock consumers at library defaults, on the shop's topics since %d (franz-go read %d records)\n", since, total(want))
	defer func() { testenv.WriteOut(t, "consumers.txt", []byte(summary.String())) }()
	args := []string{"--brokers", strings.Join(secure, ","), "--registry-url", e.RegistryURL, "--since-ms", strconv.FormatInt(since, 10),
		"--sasl-user", readerSec.User, "--ca-file", readerSec.CAFile}
	for _, c := range []struct{ dir, bin, script string }{{"python", python, "consume.py"}, {"node", node, "consume.mjs"}} {
		t.Run(c.dir, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, c.bin, append([]string{c.script}, args...)...)
			cmd.Dir = c.dir
			cmd.Env = append(os.Environ(), "KAFKA_PASSWORD="+readerSec.Password)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			t.Logf("$ (cd schemas/clients/%s && %s)\nstdout:\n%s\nstderr:\n%s", c.dir, strings.Join(cmd.Args, " "), stdout.String(), stderr.String())
			if err != nil {
				t.Errorf("%s %s: %v", c.bin, c.script, err)
			}
			got := parse(stdout.String())
			for _, topic := range topicNames() {
				g, ok := got[topic]
				fmt.Fprintf(&summary, "%-6s %-36s records=%d decoded=%d failed=%d (franz-go %d)\n", c.dir, topic, g.records, g.decoded, g.failed, want[topic])
				switch {
				case !ok:
					t.Errorf("%s: no line for it", topic)
				case g.failed != 0 || g.decoded != g.records:
					t.Errorf("%s: records=%d decoded=%d failed=%d: want every record decoded", topic, g.records, g.decoded, g.failed)
				case g.records != want[topic]:
					t.Errorf("%s: records=%d, franz-go read %d over the same offsets", topic, g.records, want[topic])
				}
			}
		})
	}
}

// tools are the Python interpreter with the Python requirements ($SHOP_TEST_PYTHON
// or python3), and node
// with the Node packages installed; when one is missing the test skips,
// or fails under SHOP_TEST_REQUIRE_TOOLS=1.
func tools(t *testing.T) (python, node string) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		testenv.MissingTool(t, format, args...)
	}
	python, err := exec.LookPath(cmp.Or(os.Getenv(EnvPython), "python3"))
	if err != nil {
		missing("no Python: %v", err)
	}
	if out, err := exec.Command(python, "-c", "import confluent_kafka.schema_registry.avro").CombinedOutput(); err != nil {
		missing("the Python requirements are not installed (pip install -r schemas/clients/python/requirements.txt): %v\n%s", err, out)
	}
	node, err = exec.LookPath("node")
	if err != nil {
		missing("node is not installed")
	}
	for _, pkg := range []string{"kafkajs", "kafkajs-snappy", "@kafkajs/confluent-schema-registry"} {
		if _, err := os.Stat(filepath.Join("node", "node_modules", pkg, "package.json")); err != nil {
			missing("node_modules lacks %s (npm ci in schemas/clients/node): %v", pkg, err)
		}
	}
	return python, node
}

// shop is a shop running in this process, apart from its stack, so that it
// can stop while the registry still serves.
type shop struct {
	url  string
	stop func()
}

func startShop(t *testing.T, e devstack.Endpoints, secrets devstack.Secrets, sec kafkasec.Security, log *slog.Logger) shop {
	t.Helper()
	cfg := devshop.Config(e, secrets, "127.0.0.1:0", log)
	cfg.Kafka = sec
	// The load's shoppers all come from this process: no per-address
	// limit on their sign-ups and log-ins.
	cfg.HTTPLimits.AuthRate, cfg.HTTPLimits.AuthBurst = 10000, 10000
	ready := make(chan string, 1)
	cfg.OnReady = func(addr, _ string) { ready <- addr }
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("the shop: %v", err)
		}
	}
	t.Cleanup(stop)
	select {
	case addr := <-ready:
		return shop{url: "http://" + addr, stop: stop}
	case err := <-done:
		stopped = true
		cancel()
		t.Fatalf("the shop stopped before it was ready: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the shop is not ready after 2 minutes")
	}
	return shop{}
}

func topicNames() []string {
	var names []string
	for _, s := range schemas.Topics() {
		names = append(names, s.Name)
	}
	return names
}

// count reads, with franz-go, every topic's records from the first at or
// after since to the end offsets now, and counts them per topic.
func count(t *testing.T, brokers []string, since int64) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	topics := topicNames()
	starts, err := adm.ListOffsetsAfterMilli(ctx, since, topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	from := map[string]map[int32]kgo.Offset{}
	left := map[string]map[int32]int64{} // partitions still to read, to their end
	n := map[string]int{}
	starts.Each(func(o kadm.ListedOffset) {
		end, _ := ends.Lookup(o.Topic, o.Partition)
		if o.Offset >= end.Offset {
			return
		}
		if from[o.Topic] == nil {
			from[o.Topic], left[o.Topic] = map[int32]kgo.Offset{}, map[int32]int64{}
		}
		from[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
		left[o.Topic][o.Partition] = end.Offset
	})
	cl := kafkatest.Client(t, brokers, kgo.ConsumePartitions(from))
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("franz-go: %v reading to the end offsets, still to read: %v", err, left)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Topic][r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			n[r.Topic]++
			if r.Offset+1 >= end {
				delete(left[r.Topic], r.Partition)
				if len(left[r.Topic]) == 0 {
					delete(left, r.Topic)
				}
			}
		})
	}
	return n
}

func total(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

// line is a consumer's `topic records=N decoded=N failed=N`.
type line struct{ records, decoded, failed int }

var lineRE = regexp.MustCompile(`(?m)^(\S+) records=(\d+) decoded=(\d+) failed=(\d+)$`)

func parse(stdout string) map[string]line {
	out := map[string]line{}
	for _, m := range lineRE.FindAllStringSubmatch(stdout, -1) {
		atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
		out[m[1]] = line{atoi(m[2]), atoi(m[3]), atoi(m[4])}
	}
	return out
}
