package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/edge/auth"
)

// buildShop compiles the binary once per test run.
func buildShop(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shop")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// devProcess is a `shop dev` child process.
type devProcess struct {
	cmd    *exec.Cmd
	out    *bytes.Buffer
	base   string
	admin  string // its admin listener (metrics, lag, endpoints)
	exited chan error
	// client acts as staff with the key shop dev keeps in its data dir.
	client *http.Client
}

// freeDevPorts are the flags that put every server of `shop dev` on a free
// port: its defaults are fixed (9092, 8081, …), and CI runs a real Kafka on
// 127.0.0.1:9092 during the tests.
var freeDevPorts = []string{"--http", "127.0.0.1:0", "--admin-http", "127.0.0.1:0", "--kafka-addr", "127.0.0.1:0", "--registry-addr", "127.0.0.1:0",
	"--mongo-addr", "127.0.0.1:0", "--postgres-port", "0", "--card-psp-addr", "127.0.0.1:0",
	"--sepa-bank-addr", "127.0.0.1:0", "--smtp-addr", "127.0.0.1:0"}

// startDev starts `shop dev` on dir, every server on a free port unless
// extra flags say otherwise (a repeated flag's last value wins), and waits
// until its gateway is healthy.
func startDev(t *testing.T, bin, dir string, extra ...string) *devProcess {
	t.Helper()
	args := append(append([]string{"dev", "--data-dir", dir, "--log-level", "warn"}, freeDevPorts...), extra...)
	cmd := exec.Command(bin, args...)
	p := &devProcess{cmd: cmd, out: &bytes.Buffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if e, err := devstack.ReadEndpoints(dir); err == nil && e.HTTP != "" {
			if resp, err := http.Get(e.HTTP + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					p.base, p.admin = e.HTTP, e.Admin
					secrets, err := devstack.ReadSecrets(dir)
					if err != nil {
						t.Fatal(err)
					}
					p.client = auth.StaffClient(secrets.StaffKey, nil)
					return p
				}
			}
		}
		select {
		case err := <-p.exited:
			t.Fatalf("shop dev exited early: %v\n%s", err, p.out)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("shop dev not healthy after 90 s:\n%s", p.out)
	return nil
}

func (p *devProcess) waitProduct(t *testing.T, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := p.client.Get(p.base + "/products/" + id)
		if err == nil {
			var m map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("product %s not readable", id)
	return nil
}

func postgresRunning(dir string) bool {
	out, _ := exec.Command("pgrep", "-f", filepath.Join(dir, "postgres")).Output()
	return len(bytes.TrimSpace(out)) > 0
}

// `shop dev` as a user runs it: Ctrl-C stops everything (no PostgreSQL left
// behind), SIGKILL loses nothing, and each restart keeps the data.
func TestDevSurvivesCtrlCAndKill(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips building and running the shop binary")
	}
	bin := buildShop(t)
	dir := t.TempDir()
	p := startDev(t, bin, dir)
	resp, err := p.client.Post(p.base+"/products", "application/json",
		strings.NewReader(`{"title": "Maillot de l'OM 93", "quantity": 1, "photo": "http://autresite.com/maillot.jpg", "price_cents": 8999}`))
	if err != nil {
		t.Fatal(err)
	}
	var created map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	id := created["id"]
	p.waitProduct(t, id)

	// Ctrl-C: a clean stop.
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("shop dev exit after SIGINT: %v\n%s", err, p.out)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("shop dev still running 60 s after SIGINT:\n%s", p.out)
	}
	if !strings.Contains(p.out.String(), "stopped") {
		t.Fatalf("no clean stop reported:\n%s", p.out)
	}
	if postgresRunning(dir) {
		t.Fatal("PostgreSQL still runs after shop dev stopped")
	}

	// Restart, then SIGKILL, then restart again: the product is still there.
	p = startDev(t, bin, dir)
	if got := p.waitProduct(t, id); got["title"] != "Maillot de l'OM 93" {
		t.Fatalf("after restart: %v", got)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	p = startDev(t, bin, dir)
	if got := p.waitProduct(t, id); got["title"] != "Maillot de l'OM 93" {
		t.Fatalf("after SIGKILL and restart: %v", got)
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	<-p.exited
}

// freePort is a port nothing listens on right now, on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// endpoints is what the running shop dev's admin listener serves on GET
// /dev/endpoints.
func (p *devProcess) endpoints(t *testing.T) devstack.Endpoints {
	t.Helper()
	resp, err := http.Get(p.admin + "/dev/endpoints")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e devstack.Endpoints
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /dev/endpoints: %s, %v", resp.Status, err)
	}
	return e
}

// Given fixed ports, `shop dev` listens on them at every start, after a
// clean stop and after SIGKILL (which leaves a dying PostgreSQL on its
// port for a moment): GET /dev/endpoints names the same addresses each
// time, those the flags gave.
func TestDevKeepsItsAddressesAcrossRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips building and running the shop binary")
	}
	bin := buildShop(t)
	dir := t.TempDir()
	addr := func() string { return "127.0.0.1:" + strconv.Itoa(freePort(t)) }
	kafka, registry, mongo, pg, card, bank, smtp := addr(), addr(), addr(), freePort(t), addr(), addr(), addr()
	fixed := []string{"--kafka-addr", kafka, "--registry-addr", registry, "--mongo-addr", mongo, "--postgres-port", strconv.Itoa(pg),
		"--card-psp-addr", card, "--sepa-bank-addr", bank, "--smtp-addr", smtp}
	want := devstack.Endpoints{Brokers: []string{kafka}, RegistryURL: "http://" + registry, CardPSPURL: "http://" + card,
		SepaBankURL: "http://" + bank, SMTPAddr: smtp}
	check := func(round string, e devstack.Endpoints) {
		t.Helper()
		if !slices.Equal(e.Brokers, want.Brokers) || e.RegistryURL != want.RegistryURL || e.CardPSPURL != want.CardPSPURL ||
			e.SepaBankURL != want.SepaBankURL || e.SMTPAddr != want.SMTPAddr {
			t.Errorf("%s: endpoints %+v, want brokers %v, registry %s, card PSP %s, SEPA bank %s, SMTP %s", round, e,
				want.Brokers, want.RegistryURL, want.CardPSPURL, want.SepaBankURL, want.SMTPAddr)
		}
		if !strings.Contains(e.MongoURI, mongo) || !strings.Contains(e.PostgresURL, "127.0.0.1:"+strconv.Itoa(pg)) {
			t.Errorf("%s: mongo %s and postgres %s, want them on %s and port %d", round, e.MongoURI, mask("postgres", e.PostgresURL), mongo, pg)
		}
	}
	p := startDev(t, bin, dir, fixed...)
	first := p.endpoints(t)
	check("first start", first)
	// The admin listener masks the PostgreSQL password; only the 0600
	// endpoints.json holds it. The MongoDB stand-in requires a password
	// too, another one (its role's, which opens the read models' database
	// only), which the admin listener serves to the tools.
	password := func(raw string) string {
		t.Helper()
		u, err := url.Parse(raw)
		if err != nil || u.User == nil {
			t.Fatalf("URL %q without credentials (%v)", mask("url", raw), err)
		}
		pw, _ := u.User.Password()
		return pw
	}
	if password(first.PostgresURL) != "xxxxx" {
		t.Errorf("GET /dev/endpoints serves the PostgreSQL password")
	}
	if e, err := devstack.ReadEndpoints(dir); err != nil {
		t.Fatal(err)
	} else if pg, mg := password(e.PostgresURL), password(e.MongoURI); pg == "" || mg == "" || pg == mg || password(first.MongoURI) != mg {
		t.Errorf("passwords: PostgreSQL's set %v, MongoDB's set %v, the same %v, served %v", pg != "", mg != "", pg == mg, password(first.MongoURI) == mg)
	} else if strings.Contains(p.out.String(), pg) || strings.Contains(p.out.String(), mg) {
		t.Errorf("shop dev's output (its logs included) holds a store's password")
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := <-p.exited; err != nil {
		t.Fatalf("shop dev exit after SIGINT: %v\n%s", err, p.out)
	}

	p = startDev(t, bin, dir, fixed...)
	second := p.endpoints(t)
	check("after Ctrl-C and restart", second)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited

	p = startDev(t, bin, dir, fixed...)
	third := p.endpoints(t)
	check("after SIGKILL and restart", third)
	if second.MongoURI != first.MongoURI || third.MongoURI != first.MongoURI || second.PostgresURL != first.PostgresURL || third.PostgresURL != first.PostgresURL {
		t.Errorf("mongo or postgres URL changed across restarts: %s, %s, %s", first.MongoURI, second.MongoURI, third.MongoURI)
	}
	if e, err := devstack.ReadEndpoints(dir); err != nil || !slices.Equal(e.Brokers, want.Brokers) || e.RegistryURL != want.RegistryURL {
		t.Errorf("endpoints.json: %+v, %v", e, err)
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	<-p.exited
}

// A port already taken fails `shop dev` at once, before anything slow
// starts, with a message that names the flag and how to get a free port.
func TestDevFailsFastOnATakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	cases := []struct{ flag, value, want string }{
		{"kafka-addr", taken, "--kafka-addr " + taken + ": address already in use (another Kafka? pass --kafka-addr 127.0.0.1:0 for a free port)"},
		{"registry-addr", taken, "--registry-addr " + taken + ": address already in use"},
		{"mongo-addr", taken, "--mongo-addr " + taken + ": address already in use"},
		{"postgres-port", port, "--postgres-port " + port + ": address already in use (another PostgreSQL? pass --postgres-port 0 for a free port)"},
		{"card-psp-addr", taken, "--card-psp-addr " + taken + ": address already in use"},
		{"sepa-bank-addr", taken, "--sepa-bank-addr " + taken + ": address already in use"},
		{"smtp-addr", taken, "--smtp-addr " + taken + ": address already in use"},
		{"http", taken, "--http " + taken + ": address already in use"},
	}
	for _, c := range cases {
		t.Run(c.flag, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := append(append([]string{"dev", "--data-dir", t.TempDir(), "--log-level", "error"}, freeDevPorts...), "--"+c.flag, c.value)
			var out, errb bytes.Buffer
			began := time.Now()
			err := run(ctx, args, func(string) string { return "" }, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q\n%s%s", err, c.want, out.String(), errb.String())
			}
			if took := time.Since(began); took > 5*time.Second {
				t.Errorf("failed after %s: want at once", took)
			}
		})
	}
}

// The flags' defaults are the conventional ports, as `shop dev --help`
// shows them.
func TestDevDefaultsAreTheConventionalPorts(t *testing.T) {
	_, help, _ := runShop(t, nil, "dev", "--help")
	for name, want := range map[string]string{"kafka-addr": `"127.0.0.1:9092"`, "registry-addr": `"127.0.0.1:8081"`,
		"mongo-addr": `"127.0.0.1:27017"`, "postgres-port": "5432", "card-psp-addr": `"127.0.0.1:8091"`,
		"sepa-bank-addr": `"127.0.0.1:8092"`, "smtp-addr": `"127.0.0.1:1025"`, "http": `"127.0.0.1:8080"`} {
		re := regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(name) + ` \w+\n[^\n]*\(default ([^)]*)\)`)
		m := re.FindStringSubmatch(help)
		if m == nil || m[1] != want {
			t.Errorf("--%s: default %v, want %s\n%s", name, m, want, help)
		}
	}
}
