package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"shopstream/internal/devstack"
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
	exited chan error
}

func startDev(t *testing.T, bin, dir string) *devProcess {
	t.Helper()
	cmd := exec.Command(bin, "dev", "--data-dir", dir, "--http", "127.0.0.1:0", "--log-level", "warn")
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
					p.base = e.HTTP
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
		resp, err := http.Get(p.base + "/products/" + id)
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
	resp, err := http.Post(p.base+"/products", "application/json",
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
