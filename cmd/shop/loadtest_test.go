package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/testinfra/kafkatest"
	"shopstream/internal/tools/loadtest/report"
	"shopstream/projectors/products"
	"shopstream/projectors/runner"
	"shopstream/schemas"
)

// A short Black Friday run of `shop loadtest --embedded`: the spike is
// absorbed, every invariant holds, and the report is written with its
// charts. With SHOP_TEST_KAFKA_BROKERS set (CI) the shop runs on that real
// Apache Kafka broker instead of the embedded one.
func TestLoadtestSpikeHoldsInvariants(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips building and running the shop binary")
	}
	bin := buildShop(t)
	out := t.TempDir()
	args := []string{"loadtest", "--embedded", "--profile", "blackfriday", "--duration", "15s", "--base-rps", "3", "--spike-x", "10",
		"--spike-for", "5s", "--email-rate", "5", "--drain-timeout", "3m", "--out", out,
		// Each context on a database of its own: the invariants hold with no
		// transaction spanning two contexts.
		"--database-per-context"}
	if b := os.Getenv(kafkatest.EnvBrokers); b != "" {
		args = append(args, realBrokerArgs(t, strings.Split(b, ","))...)
	}
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("stdout:\n%s", stdout.String())
	if err != nil {
		t.Fatalf("shop loadtest: %v\nstderr (tail):\n%s", err, tail(stderr.String(), 40))
	}
	if !strings.Contains(stdout.String(), "(PostgreSQL: a database per context)") {
		t.Errorf("the embedded shop did not say it runs a database per context")
	}
	for i := 1; i <= 6; i++ {
		if !strings.Contains(stdout.String(), fmt.Sprintf("I%d holds", i)) {
			t.Errorf("I%d is not reported holding", i)
		}
	}
	if !strings.Contains(stderr.String(), "s/15s] target   30/s") {
		t.Errorf("no live progress line for the spike in stderr:\n%s", tail(stderr.String(), 30))
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Holds() || !rep.Drain.Drained || rep.Totals.OrdersAccepted == 0 ||
		rep.Totals.OrdersConfirmed+rep.Totals.OrdersCancelled != rep.Totals.OrdersAccepted {
		t.Fatalf("report: holds %v, drained %v, totals %+v", rep.Holds(), rep.Drain.Drained, rep.Totals)
	}
	if rep.Totals.EmailsSent != rep.Totals.OrdersConfirmed {
		t.Errorf("%d emails sent for %d confirmed orders", rep.Totals.EmailsSent, rep.Totals.OrdersConfirmed)
	}
	for _, e := range rep.Emails {
		if e.Sent > rep.EmailQuota {
			t.Errorf("second %d: %d emails, quota %d", e.T, e.Sent, rep.EmailQuota)
		}
	}
	for _, name := range []string{"throughput.png", "latency.png", "lag.png", "emails.png", "stock.png"} {
		f, err := os.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		f.Close()
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil || strings.Count(string(html), "<svg") != 5 {
		t.Fatalf("report.html: %v, %d charts", err, strings.Count(string(html), "<svg"))
	}
}

// forgetProjections deletes the projectors' consumer groups left on a
// reused test broker by an earlier run: the embedded shop's MongoDB is
// new, so its projectors must fold the log from the start, or the read
// models miss what the old groups had folded and I4 rightly fails.
// realBrokerArgs are the flags that run a load test's embedded shop on the
// real broker plain: through its SASL_SSL listener (SCRAM-SHA-512 over
// TLS), as its super user, once no other test runs a shop there and the
// projector groups of an earlier run are gone.
func realBrokerArgs(t *testing.T, plain []string) []string {
	t.Helper()
	kafkatest.Exclusive(t, plain)
	forgetProjections(t, plain)
	secure, sec := kafkatest.SecureUser(t, plain, kafkatest.Admin, nil)
	t.Logf("against the real broker's SASL_SSL listener %v, as %s", secure, sec.User)
	return append([]string{"--brokers", strings.Join(secure, ",")}, kafkatest.Flags(sec)...)
}

// secureChildren makes the `shop run` processes this test starts reach the
// real broker plain through its SASL_SSL listener, as its super user (their
// SHOP_KAFKA_* variables, inherited), and returns that listener's address.
func secureChildren(t *testing.T, plain []string) []string {
	t.Helper()
	secure, sec := kafkatest.SecureUser(t, plain, kafkatest.Admin, nil)
	t.Setenv("SHOP_KAFKA_USER", sec.User)
	t.Setenv("SHOP_KAFKA_PASSWORD", sec.Password)
	t.Setenv("SHOP_KAFKA_TLS", "true")
	t.Setenv("SHOP_KAFKA_CA_FILE", sec.CAFile)
	t.Logf("the shop's processes reach the real broker through SASL_SSL at %v, as %s", secure, sec.User)
	return secure
}

func forgetProjections(t *testing.T, brokers []string) {
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	groups, err := adm.ListGroups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var old []string
	for _, g := range groups.Groups() {
		if strings.HasPrefix(g, runner.GroupPrefix) {
			old = append(old, g)
		}
	}
	if len(old) == 0 {
		return
	}
	res, err := adm.DeleteGroups(t.Context(), old...)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Error(); err != nil {
		t.Fatalf("delete the old projector groups %v: %v", old, err)
	}
	t.Logf("deleted the projector groups of an earlier run: %v", old)
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func TestLoadtestFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"loadtest"}, "--target URL or --embedded"},
		{[]string{"loadtest", "--embedded", "--target", "http://x"}, "--target URL or --embedded"},
		{[]string{"loadtest", "--embedded", "--profile", "cyber"}, "--profile"},
		{[]string{"loadtest", "--embedded", "--base-rps", "0"}, "--base-rps"},
		{[]string{"loadtest", "--embedded", "--duration", "10s", "--spike-for", "20s"}, "--spike-for"},
		{[]string{"loadtest", "--embedded", "--workers", "0"}, "--workers"},
		{[]string{"loadtest", "--embedded", "--psp-failure-rate", "2"}, "--psp-failure-rate"},
		{[]string{"loadtest", "--embedded", "--ramp", "--ramp-start", "0"}, "--ramp-start"},
		{[]string{"loadtest", "--embedded", "--ramp", "--ramp-max", "1"}, "--ramp-max"},
		{[]string{"loadtest", "--embedded", "--ramp", "--ramp-mix", "browse"}, "--ramp-mix"},
		{[]string{"loadtest", "--embedded", "--ramp", "--ramp-step-for", "10ms"}, "--ramp-step-for"},
	} {
		var out bytes.Buffer
		err := run(t.Context(), c.args, func(string) string { return "" }, &out, &out)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error naming %s", c.args, err, c.want)
		}
	}
}

// `shop loadtest --ramp --embedded`, short: small steps of seconds, a
// spike of seconds, a few seconds at half capacity. The report has the
// sustainable rate, a bottleneck, the plots against offered load, and a
// spike without a single 500; every invariant holds. SHOP_TEST_SLOW=1
// runs it at full length instead (10 s steps, a 60 s spike).
func TestLoadtestRamp(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips building and running the shop binary")
	}
	bin := buildShop(t)
	out := t.TempDir()
	args := []string{"loadtest", "--embedded", "--ramp", "--ramp-start", "2", "--ramp-step", "3", "--ramp-max", "8", "--ramp-step-for", "3s",
		"--ramp-spike-for", "3s", "--ramp-visible-for", "3s", "--drain-timeout", "2m", "--out", out}
	if os.Getenv("SHOP_TEST_SLOW") == "1" {
		args = []string{"loadtest", "--embedded", "--ramp", "--ramp-start", "5", "--ramp-step", "5", "--ramp-max", "200", "--ramp-step-for", "10s",
			"--ramp-spike-for", "60s", "--ramp-visible-for", "30s", "--drain-timeout", "5m", "--out", out}
	}
	if b := os.Getenv(kafkatest.EnvBrokers); b != "" {
		args = append(args, realBrokerArgs(t, strings.Split(b, ","))...)
	}
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("stdout:\n%s", stdout.String())
	if err != nil {
		t.Fatalf("shop loadtest --ramp: %v\nstderr (tail):\n%s", err, tail(stderr.String(), 40))
	}
	for _, want := range []string{"sustainable: ", "bottleneck: ", "spike: ", "spike drain: ", "accepted→visible at "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if !strings.Contains(stderr.String(), "[step 1 ") {
		t.Errorf("no live line of step 1 in stderr:\n%s", tail(stderr.String(), 30))
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Holds() || !rep.Drain.Drained || rep.Totals.OrdersConfirmed+rep.Totals.OrdersCancelled != rep.Totals.OrdersAccepted {
		t.Fatalf("report: holds %v, drained %v, totals %+v", rep.Holds(), rep.Drain.Drained, rep.Totals)
	}
	rp := rep.Ramp
	if rp == nil {
		t.Fatal("report.json has no ramp")
	}
	if rp.Sustainable <= 0 || rp.Bottleneck == "" || rp.Stopped == "" || len(rp.Steps) == 0 {
		t.Fatalf("ramp: sustainable %v, bottleneck %q (%s), stopped %q, %d steps", rp.Sustainable, rp.Bottleneck, rp.BottleneckReason, rp.Stopped, len(rp.Steps))
	}
	for _, st := range rp.Steps {
		if len(st.Stages) < 5 { // loadgen, postgres, gateway, relay and the groups
			t.Errorf("step at %v orders/s: stages %+v", st.Offered, st.Stages)
		}
	}
	sp := rp.Spike
	if sp == nil || sp.Answers.Status500 != 0 || !sp.No500 || sp.AcceptedOrders == 0 || !sp.Drained || sp.Bound <= 0 && sp.BacklogOrders > 0 {
		t.Fatalf("spike: %+v", sp)
	}
	if sp.Offered != rp.Sustainable*5 {
		t.Errorf("spike at %v orders/s, want 5 × %v", sp.Offered, rp.Sustainable)
	}
	if v := rp.Visible; v == nil || v.Seen == 0 || v.Offered != rp.Sustainable/2 {
		t.Fatalf("accepted→visible: %+v", v)
	}
	for _, name := range []string{report.RampThroughputFile, report.RampStagesFile, report.RampLatencyFile} {
		f, err := os.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		f.Close()
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil || strings.Count(string(html), "<svg") != 8 || !strings.Contains(string(html), `id="capacity"`) {
		t.Fatalf("report.html: %v, %d charts", err, strings.Count(string(html), "<svg"))
	}
}

// A load test's embedded shop on a broker that still holds an earlier
// shop's projector groups would resume them over empty read models: it is
// refused before anything starts, naming the groups and the way out.
func TestLoadtestRefusesABrokerWithStaleProjectorGroups(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, schemas.TopicProducts))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	brokers := strings.Join(kc.ListenAddrs(), ",")
	args := []string{"loadtest", "--embedded", "--brokers", brokers, "--duration", "1s", "--out", t.TempDir()}

	// An earlier shop's products projector committed an offset here.
	group := products.Projection().Group()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var offsets kadm.Offsets
	offsets.Add(kadm.Offset{Topic: schemas.TopicProducts, Partition: 0, At: 0})
	if res, err := kadm.NewClient(cl).CommitOffsets(t.Context(), group, offsets); err != nil || res.Error() != nil {
		t.Fatalf("commit the earlier shop's offset: %v %v", err, res.Error())
	}
	out, _, err := runShop(t, nil, args...)
	if err == nil || !strings.Contains(err.Error(), "--brokers "+brokers) || !strings.Contains(err.Error(), group) || !strings.Contains(err.Error(), "kafka.sh reset") {
		t.Fatalf("shop loadtest on a broker with %s: %v", group, err)
	}
	if strings.Contains(out, "starting an embedded shop") {
		t.Errorf("the shop started before the broker was refused:\n%s", out)
	}
}
