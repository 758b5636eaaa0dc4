package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/devinfra/embedded/postgres"
	"shopstream/internal/testinfra/testenv"
)

// freeInfraPorts put every server of `shop infra` on a free port: its
// defaults are the fixed ports of `shop dev`, and CI runs a real Kafka on
// 127.0.0.1:9092 during the tests.
var freeInfraPorts = []string{"--kafka-addr", "127.0.0.1:0", "--registry-addr", "127.0.0.1:0", "--mongo-addr", "127.0.0.1:0",
	"--postgres-port", "0", "--card-psp-addr", "127.0.0.1:0", "--sepa-bank-addr", "127.0.0.1:0", "--smtp-addr", "127.0.0.1:0"}

// skipWithoutPostgres skips a test that starts `shop infra` where the
// PostgreSQL server binaries are missing.
func skipWithoutPostgres(t *testing.T) {
	t.Helper()
	if _, err := postgres.Tool("initdb"); errors.Is(err, postgres.ErrBinariesNotFound) {
		testenv.MissingTool(t, "shop infra needs the PostgreSQL server binaries: %v", err)
	}
}

// readmeBlock is the first sh block of the README's section named title.
func readmeBlock(t *testing.T, title string) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n"+title+"\n")
	if !ok {
		t.Fatalf("README.md has no section %q", title)
	}
	_, block, ok := strings.Cut(section, "```sh\n")
	if !ok {
		t.Fatalf("README.md section %q has no sh block", title)
	}
	block, _, _ = strings.Cut(block, "```")
	return strings.Split(strings.TrimSpace(block), "\n")
}

// The README's "Without containers" recipe, run as written by bash in a
// fresh directory: `shop infra`, `shop migrate`, three `shop run`
// processes, a Black Friday load test whose invariants all hold (I2 on the
// simulators' charges), then SIGTERM to every process, each of which exits
// 0, leaving no PostgreSQL behind and no endpoints.json. Only the ports
// change (every server on a free one) and, unless SHOP_TEST_SLOW=1, the
// load lasts 15 s instead of the README's 30 s.
func TestReadmeWithoutContainers(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts shop infra, three shop run processes and a load test")
	}
	skipWithoutPostgres(t)
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.MissingTool(t, "the README's recipe needs %s: %v", tool, err)
		}
	}
	lines := readmeBlock(t, "### Without containers")
	if lines[0] != "go build -o shop ./cmd/shop" {
		t.Fatalf("the recipe starts with %q, want the build of ./shop", lines[0])
	}
	bin := buildShop(t)
	dir := t.TempDir()
	// The fixed HTTP addresses of the three `shop run`, wherever they
	// appear (--http, the readiness loop, --target), become free ones.
	addrs := map[string]string{}
	for _, l := range lines {
		for _, a := range regexp.MustCompile(`127\.0\.0\.1:80[0-9][0-9]\b`).FindAllString(l, -1) {
			if addrs[a] == "" {
				addrs[a] = freeAddr(t)
			}
		}
	}
	if len(addrs) != 3 {
		t.Fatalf("the recipe names %d HTTP addresses (%v), want one per shop run", len(addrs), addrs)
	}
	script := []string{"set -ex", "cp " + bin + " shop"}
	var infra, migrate, runs, loadtest int
	for _, l := range lines[1:] {
		for from, to := range addrs {
			l = strings.ReplaceAll(l, from, to)
		}
		switch {
		case strings.HasPrefix(l, "./shop infra "):
			infra++
			l = "./shop infra " + strings.Join(freeInfraPorts, " ") + strings.TrimPrefix(l, "./shop infra")
		case strings.HasPrefix(l, "./shop migrate "):
			migrate++
		case strings.HasPrefix(l, "./shop run "):
			runs++
		case strings.HasPrefix(l, "./shop loadtest "):
			loadtest++
			if os.Getenv("SHOP_TEST_SLOW") != "1" {
				l += " --duration 15s" // the last --duration wins
			}
		}
		script = append(script, l)
	}
	if infra != 1 || migrate != 1 || runs != 3 || loadtest != 1 {
		t.Fatalf("the recipe has %d shop infra, %d shop migrate, %d shop run, %d shop loadtest; want 1, 1, 3, 1:\n%s",
			infra, migrate, runs, loadtest, strings.Join(lines, "\n"))
	}
	t.Logf("running in %s:\n%s", dir, strings.Join(script, "\n"))

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", strings.Join(script, "\n"))
	cmd.Dir = dir
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SHOP_") })
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &testenv.LockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// What the recipe leaves running if it fails: SIGTERM first, so that
	// `shop infra` stops its PostgreSQL, then SIGKILL.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		if syscall.Kill(-pgid, syscall.SIGTERM) == nil { // something is left
			time.Sleep(10 * time.Second)
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	})
	began := time.Now()
	err := cmd.Wait()
	log := out.String()
	t.Logf("the recipe took %s", time.Since(began).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("the recipe failed: %v\n%s", err, log)
	}
	for _, want := range []string{"shop infra ready", "applied ", "components gateway,outbox-relay,",
		"components stockfeed,saga,payments-card,payments-sepa,billing,email,", "components projector-products,projector-orders,",
		"from card PSP GET /charges and SEPA bank GET /charges", "stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("the recipe's output has no %q", want)
		}
	}
	for i := 1; i <= 6; i++ {
		if !strings.Contains(log, fmt.Sprintf("I%d holds", i)) {
			t.Errorf("I%d does not hold", i)
		}
	}
	m := regexp.MustCompile(`orders: (\d+) accepted, (\d+) confirmed, (\d+) cancelled`).FindStringSubmatch(log)
	if m == nil || m[1] == "0" || m[2] == "0" {
		t.Errorf("no order accepted and confirmed: %v", m)
	} else {
		t.Logf("%s", m[0])
	}
	if _, err := os.Stat(filepath.Join(dir, ".shop", "endpoints.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("endpoints.json left after shop infra stopped: %v", err)
	}
	if postgresRunning(filepath.Join(dir, ".shop")) {
		t.Error("PostgreSQL still runs after shop infra stopped")
	}
	if t.Failed() {
		t.Logf("output:\n%s", log)
	}
}

// `shop infra --brokers` starts no broker and writes the cluster it
// was given into endpoints.json; SIGINT stops it cleanly (exit 0, no
// endpoints.json, no PostgreSQL left).
func TestInfraWithExternalKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts shop infra")
	}
	skipWithoutPostgres(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	bin := buildShop(t)
	dir := filepath.Join(t.TempDir(), "data")
	args := append(append([]string{"infra", "--data-dir", dir, "--log-level", "warn"}, freeInfraPorts...), "--brokers", strings.Join(kc.ListenAddrs(), ","))
	p := &shopRun{cmd: exec.Command(bin, args...), out: &testenv.LockedBuffer{}, exited: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	if !p.waitOutput("shop infra ready", 90*time.Second) {
		t.Fatalf("shop infra not ready:\n%s", p.out)
	}
	e, err := devstack.ReadEndpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.Brokers, kc.ListenAddrs()) || e.RegistryURL == "" || e.MongoURI == "" || e.PostgresURL == "" ||
		e.CardPSPURL == "" || e.SepaBankURL == "" || e.SMTPAddr == "" {
		t.Errorf("endpoints %+v, want brokers %v and every other server", e, kc.ListenAddrs())
	}
	if !strings.Contains(p.out.String(), "(external)") {
		t.Errorf("the ready lines do not say Kafka is external:\n%s", p.out)
	}
	if _, err := os.Stat(filepath.Join(dir, "kafka")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an embedded broker's directory exists: %v", err)
	}
	// Tools read it: shop migrate by --data-dir.
	if out, err := exec.Command(bin, "migrate", "--data-dir", dir).CombinedOutput(); err != nil || !strings.Contains(string(out), "applied") {
		t.Errorf("shop migrate --data-dir: %v\n%s", err, out)
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("shop infra exit after SIGINT: %v\n%s", err, p.out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("shop infra still running 30 s after SIGINT:\n%s", p.out)
	}
	if _, err := os.Stat(filepath.Join(dir, "endpoints.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("endpoints.json left: %v", err)
	}
	if postgresRunning(dir) {
		t.Error("PostgreSQL still runs after shop infra stopped")
	}
}

// `shop run --data-dir` and `shop loadtest --target --data-dir` take the
// addresses of a `shop infra` from its endpoints.json; a flag given (on
// the command line or by its SHOP_* variable) wins; `loadtest
// --card-psp-url/--sepa-bank-url` name the simulators whatever the source.
func TestEndpointsFillTheInfrastructureFlags(t *testing.T) {
	dir := t.TempDir()
	e := devstack.Endpoints{Brokers: []string{"127.0.0.1:1", "127.0.0.1:2"}, RegistryURL: "http://127.0.0.1:3", MongoURI: "mongodb://127.0.0.1:4/",
		PostgresURL: "postgres://shop@127.0.0.1:5/shop", CardPSPURL: "http://127.0.0.1:6", SepaBankURL: "http://127.0.0.1:7", SMTPAddr: "127.0.0.1:8",
		MailDir: "/mail"}
	if err := devstack.WriteEndpoints(dir, e); err != nil {
		t.Fatal(err)
	}
	fs := newFlags("run", io.Discard)
	infra := addInfraFlags(fs)
	env := map[string]string{"SHOP_SMTP_ADDR": "smtp.example.org:25"}
	if err := parse(fs, []string{"--registry-url", "http://registry:8081"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := setFromEndpoints(fs, dir); err != nil {
		t.Fatal(err)
	}
	got := []string{infra.brokers.String(), *infra.registryURL, *infra.mongoURI, *infra.postgresURL, *infra.cardPSPURL, *infra.sepaBankURL, *infra.smtpAddr}
	want := []string{"127.0.0.1:1,127.0.0.1:2", "http://registry:8081", e.MongoURI, e.PostgresURL, e.CardPSPURL, e.SepaBankURL, "smtp.example.org:25"}
	if !slices.Equal(got, want) {
		t.Errorf("shop run flags\n got %q\nwant %q", got, want)
	}
	if err := setFromEndpoints(newFlags("run", io.Discard), t.TempDir()); err == nil || !strings.Contains(err.Error(), "shop infra") {
		t.Errorf("no endpoints.json: %v, want an error naming shop infra", err)
	}

	ctx := context.Background()
	got2, err := targetInfrastructure(ctx, nil, "", "", "http://127.0.0.1:9", dir, "", "")
	if err != nil || got2.CardPSPURL != e.CardPSPURL || got2.SepaBankURL != e.SepaBankURL || got2.MailDir != "/mail" || got2.MongoURI != e.MongoURI {
		t.Errorf("loadtest --data-dir: %+v, %v; want the endpoints file's", got2, err)
	}
	got2, err = targetInfrastructure(ctx, nil, "", "", "http://127.0.0.1:9", dir, "http://psp:1", "")
	if err != nil || got2.CardPSPURL != "http://psp:1" || got2.SepaBankURL != e.SepaBankURL {
		t.Errorf("loadtest --data-dir --card-psp-url: %+v, %v; want the flag's card PSP", got2, err)
	}
	got2, err = targetInfrastructure(ctx, []string{"kafka:9092"}, "http://registry:8081", "mongodb://mongo/", "http://127.0.0.1:9", "", "http://psp:1", "http://bank:2")
	if err != nil || got2.CardPSPURL != "http://psp:1" || got2.SepaBankURL != "http://bank:2" || got2.Brokers[0] != "kafka:9092" {
		t.Errorf("loadtest --brokers --card-psp-url --sepa-bank-url: %+v, %v", got2, err)
	}
}

// `shop infra` and `shop dev` have the same address flags, with the same
// fixed defaults (the conventional ports), as --help shows them.
func TestInfraPortsAreDevs(t *testing.T) {
	_, dev, _ := runShop(t, nil, "dev", "--help")
	_, infra, _ := runShop(t, nil, "infra", "--help")
	for _, name := range []string{"kafka-addr", "registry-addr", "mongo-addr", "postgres-port", "card-psp-addr", "sepa-bank-addr", "smtp-addr"} {
		re := regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(name) + ` \w+\n[^\n]*\(default ([^)]*)\)`)
		d, i := re.FindStringSubmatch(dev), re.FindStringSubmatch(infra)
		if d == nil || i == nil || d[1] != i[1] {
			t.Errorf("--%s: shop dev %v, shop infra %v", name, d, i)
		}
	}
	if !strings.Contains(infra, "-brokers") {
		t.Errorf("shop infra --help has no --brokers:\n%s", infra)
	}
}

// A taken fixed port stops `shop infra` at once, naming its flag, before
// anything starts and before a stale endpoints.json is touched; with
// --brokers the embedded broker's address is not needed.
func TestInfraFailsFastOnATakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	dir := t.TempDir()
	if err := devstack.WriteEndpoints(dir, devstack.Endpoints{RegistryURL: "http://" + taken}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ flag, want string }{
		{"kafka-addr", "--kafka-addr " + taken + ": address already in use (another Kafka? pass --kafka-addr 127.0.0.1:0 for a free port)"},
		{"registry-addr", "--registry-addr " + taken + ": address already in use"},
		{"smtp-addr", "--smtp-addr " + taken + ": address already in use"},
	} {
		began := time.Now()
		args := append(append([]string{"infra", "--data-dir", dir, "--log-level", "error"}, freeInfraPorts...), "--"+c.flag, taken)
		_, _, err := runShop(t, nil, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--%s taken: %v, want %q", c.flag, err, c.want)
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Errorf("--%s taken: failed after %s, want at once", c.flag, took)
		}
	}
	if _, err := devstack.ReadEndpoints(dir); err != nil {
		t.Errorf("the endpoints.json of whoever holds the port was removed: %v", err)
	}
}

// Without --data-dir, `shop run`'s infrastructure flags default to where a
// `shop infra` on its default ports listens: no SEPA payment goes to the
// card PSP's port.
func TestRunDefaultsAreInfrasPorts(t *testing.T) {
	fs := newFlags("run", io.Discard)
	f := addInfraFlags(fs)
	got := []string{f.brokers.String(), *f.registryURL, *f.mongoURI, *f.postgresURL, *f.cardPSPURL, *f.sepaBankURL, *f.smtpAddr}
	want := []string{devstack.DefaultKafkaAddr, "http://" + devstack.DefaultRegistryAddr, "mongodb://" + devstack.DefaultMongoAddr + "/",
		fmt.Sprintf("postgres://shop@127.0.0.1:%d/shop?sslmode=disable", devstack.DefaultPostgresPort),
		"http://" + devstack.DefaultCardPSPAddr, "http://" + devstack.DefaultSepaBankAddr, devstack.DefaultSMTPAddr}
	if !slices.Equal(got, want) {
		t.Errorf("shop run defaults\n got %q\nwant %q", got, want)
	}
}
