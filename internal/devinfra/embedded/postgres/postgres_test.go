package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// requireBinaries skips the test when no PostgreSQL server binaries exist.
func requireBinaries(t *testing.T) {
	t.Helper()
	if _, err := findBinaries(); errors.Is(err, ErrBinariesNotFound) {
		t.Skip("PostgreSQL server binaries not found: apt-get install postgresql (or set SHOP_PG_BIN)")
	} else if err != nil {
		t.Fatal(err)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startServer starts a server and registers its Stop as cleanup.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	start := time.Now()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("started %s in %s", s.URL(), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return s
}

func connect(t *testing.T, s *Server) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		t.Fatalf("connect %s: %v", s.URL(), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec1(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func queryName(t *testing.T, s *Server, id int) string {
	t.Helper()
	var name string
	if err := connect(t, s).QueryRow(t.Context(), "SELECT name FROM items WHERE id = $1", id).Scan(&name); err != nil {
		t.Fatalf("select item %d: %v", id, err)
	}
	return name
}

func urlPort(t *testing.T, s *Server) int {
	t.Helper()
	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func stop(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stopped in %s", time.Since(start).Round(time.Millisecond))
}

func TestRestartKeepsData(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	dir := t.TempDir()

	s1 := startServer(t, Config{Dir: dir})
	if !strings.HasPrefix(s1.URL(), "postgres://shop:") || !strings.HasSuffix(s1.URL(), "/shop?sslmode=disable") {
		t.Errorf("unexpected URL %q", s1.URL())
	}
	conn := connect(t, s1)
	exec1(t, conn, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
	exec1(t, conn, "INSERT INTO items VALUES ($1, $2)", 1, "widget")
	conn.Close(t.Context())
	port1 := urlPort(t, s1)
	stop(t, s1)

	port2, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	for port2 == port1 {
		if port2, err = freePort(); err != nil {
			t.Fatal(err)
		}
	}
	s2 := startServer(t, Config{Dir: dir, Port: port2})
	if got := urlPort(t, s2); got != port2 {
		t.Fatalf("URL port = %d, want %d", got, port2)
	}
	if got := queryName(t, s2, 1); got != "widget" {
		t.Fatalf("after restart: name = %q, want widget", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "postgres.log")); err != nil {
		t.Errorf("log file: %v", err)
	}
}

func TestCustomDatabase(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	s := startServer(t, Config{Dir: t.TempDir(), Database: "Orders-DB"})
	var db string
	if err := connect(t, s).QueryRow(t.Context(), "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if db != "Orders-DB" {
		t.Fatalf("current_database() = %q, want Orders-DB", db)
	}
}

func TestStopTwice(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	s := startServer(t, Config{Dir: t.TempDir()})
	connect(t, s) // server is up

	// Concurrent first calls, then a later one: all return nil.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Stop(t.Context()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Stop #%d: %v", i+1, err)
		}
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	select {
	case <-s.done:
	default:
		t.Fatal("postmaster still running after Stop")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, s.URL()); err == nil {
		conn.Close(ctx)
		t.Fatal("server still accepts connections after Stop")
	}
}

// TestStaleServerTakeover simulates a parent that lost its handle: a second
// Start on the same Dir, without stopping the first, must take over.
func TestStaleServerTakeover(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	dir := t.TempDir()

	s1 := startServer(t, Config{Dir: dir})
	conn := connect(t, s1)
	exec1(t, conn, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
	exec1(t, conn, "INSERT INTO items VALUES (1, 'gadget')")
	conn.Close(t.Context())

	s2 := startServer(t, Config{Dir: dir}) // s1 deliberately not stopped
	select {
	case <-s1.done:
	default:
		t.Fatal("first postmaster still running after takeover")
	}
	if got := queryName(t, s2, 1); got != "gadget" {
		t.Fatalf("after takeover: name = %q, want gadget", got)
	}

	// Stopping the abandoned handle is harmless and leaves s2 alone.
	if err := s1.Stop(t.Context()); err != nil {
		t.Fatalf("Stop of taken-over server: %v", err)
	}
	conn2 := connect(t, s2)
	exec1(t, conn2, "INSERT INTO items VALUES (2, 'gizmo')")
}

// TestParentDeathStopsServer kills (SIGKILL) a process that started a server
// and checks that the server dies with it and that the data is intact.
func TestParentDeathStopsServer(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	dir := t.TempDir()

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SHOP_PG_TEST_HELPER_DIR="+dir)
	cmd.Stderr = t.Output()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if pid, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				lines <- pid
				return
			}
		}
		close(lines)
	}()
	var pid int
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatal("helper exited before reporting READY")
		}
		pid, _ = strconv.Atoi(line)
	case <-time.After(90 * time.Second):
		t.Fatal("helper did not become ready")
	}
	if pid <= 0 || !processAlive(pid) {
		t.Fatalf("bad postmaster pid %d", pid)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed := time.Now()
	if !waitGone(t.Context(), pid, 20*time.Second) {
		t.Fatalf("postmaster %d survived its parent's death", pid)
	}
	t.Logf("postmaster exited %s after parent SIGKILL", time.Since(killed).Round(time.Millisecond))

	s := startServer(t, Config{Dir: dir})
	if got := queryName(t, s, 7); got != "sprocket" {
		t.Fatalf("after parent death: name = %q, want sprocket", got)
	}
}

// TestHelperServerProcess is the child of TestParentDeathStopsServer.
func TestHelperServerProcess(t *testing.T) {
	dir := os.Getenv("SHOP_PG_TEST_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestParentDeathStopsServer")
	}
	ctx := context.Background()
	s, err := Start(ctx, Config{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper Start:", err)
		os.Exit(2)
	}
	conn, err := pgx.Connect(ctx, s.URL())
	if err == nil {
		_, err = conn.Exec(ctx, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL); INSERT INTO items VALUES (7, 'sprocket')")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper SQL:", err)
		os.Exit(2)
	}
	conn.Close(ctx)
	fmt.Printf("READY %d\n", s.cmd.Process.Pid)
	select {} // wait to be killed
}

func TestBinariesNotFound(t *testing.T) {
	oldRoot := pgInstallRoot
	pgInstallRoot = t.TempDir() // no <version>/bin below
	t.Cleanup(func() { pgInstallRoot = oldRoot })
	t.Setenv("PATH", "")

	for _, tc := range []struct {
		name, binDir string
	}{
		{"SHOP_PG_BIN empty dir", t.TempDir()},
		{"SHOP_PG_BIN unset", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envBinDir, tc.binDir)
			dir := filepath.Join(t.TempDir(), "cluster")
			_, err := Start(t.Context(), Config{Dir: dir})
			if !errors.Is(err, ErrBinariesNotFound) {
				t.Fatalf("err = %v, want ErrBinariesNotFound", err)
			}
			for _, want := range []string{"apt-get install postgresql", "SHOP_PG_BIN"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Dir was touched although binaries are missing (stat: %v)", err)
			}
		})
	}
}

func TestFindBinariesOrder(t *testing.T) {
	fake := func(dir string, names ...string) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	root := t.TempDir()
	for _, v := range []string{"9.6", "10", "15"} {
		fake(filepath.Join(root, v, "bin"), "initdb", "postgres")
	}
	fake(filepath.Join(root, "16", "bin"), "initdb") // incomplete: skipped
	oldRoot := pgInstallRoot
	pgInstallRoot = root
	t.Cleanup(func() { pgInstallRoot = oldRoot })

	pathDir := t.TempDir()
	fake(pathDir, "initdb", "postgres")
	envDir := t.TempDir()
	fake(envDir, "initdb", "postgres")

	check := func(want string) {
		t.Helper()
		b, err := findBinaries()
		if err != nil {
			t.Fatal(err)
		}
		if b.initdb != filepath.Join(want, "initdb") || b.postgres != filepath.Join(want, "postgres") {
			t.Fatalf("found %+v, want binaries in %s", b, want)
		}
	}

	t.Setenv(envBinDir, "")
	t.Setenv("PATH", "")
	check(filepath.Join(root, "15", "bin")) // highest complete version, numerically

	t.Setenv("PATH", pathDir)
	check(pathDir) // PATH beats the install root

	t.Setenv(envBinDir, envDir)
	check(envDir) // SHOP_PG_BIN beats PATH

	t.Setenv(envBinDir, t.TempDir()) // set but empty: no fallback
	if _, err := findBinaries(); !errors.Is(err, ErrBinariesNotFound) {
		t.Fatalf("SHOP_PG_BIN without binaries: err = %v, want ErrBinariesNotFound", err)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"9.6", "10", -1},
		{"15", "15", 0},
		{"16", "15", 1},
		{"9.6", "9.5", 1},
		{"devel", "9.6", -1},
	} {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestPortInUse(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	dir := t.TempDir()
	_, err = Start(t.Context(), Config{Dir: dir, Port: port, Logger: testLogger(t)})
	if err == nil {
		t.Fatal("Start succeeded on a port that is in use")
	}
	if !errors.Is(err, errPortInUse) || !strings.Contains(err.Error(), "postgres.log (tail)") {
		t.Fatalf("error should flag the port and include the log tail, got: %v", err)
	}
	t.Logf("error as reported:\n%v", err)
	if pid, ok := readPid(filepath.Join(dir, "pgdata", "postmaster.pid")); ok && processAlive(pid) {
		t.Fatalf("postmaster %d left running after failed Start", pid)
	}
}

func readPid(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	return pid, err == nil
}

// TestUntraversableDir checks, when running as root, that a Dir the server
// account cannot reach outside the temp dir is refused with a clear error.
func TestUntraversableDir(t *testing.T) {
	requireBinaries(t)
	if os.Geteuid() != 0 {
		t.Skip("only relevant when running as root")
	}
	acct, err := runAccount()
	if err != nil {
		t.Fatal(err)
	}
	// A 0700 directory owned by someone else is not ours to open up.
	blocked := t.TempDir()
	if err := os.Chown(blocked, 0, 0); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(blocked, "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(other, 65534, 65534); err != nil { // nobody
		t.Fatal(err)
	}
	if acct.uid == 65534 {
		t.Skip("server account is nobody; cannot build a directory it may not traverse this way")
	}
	_, err = Start(t.Context(), Config{Dir: filepath.Join(other, "cluster"), Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), "not traversable") {
		t.Fatalf("want an error naming %s as not traversable, got: %v", other, err)
	}
	t.Logf("error as reported: %v", err)
}

// TestStopCanceledContextKills checks that Stop with a done context still
// leaves no server behind, reports the kill, and that the data survives it.
func TestStopCanceledContextKills(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	dir := t.TempDir()
	s, err := Start(t.Context(), Config{Dir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	conn := connect(t, s)
	exec1(t, conn, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
	exec1(t, conn, "INSERT INTO items VALUES (3, 'cog')")
	conn.Close(t.Context())

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = s.Stop(ctx)
	select {
	case <-s.done:
	default:
		t.Fatal("postmaster still running after Stop with canceled context")
	}
	// Either the fast shutdown won the race (nil) or it was killed and says so.
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop: %v, want nil or context.Canceled", err)
	}
	t.Logf("Stop with canceled ctx: %v", err)
	if left := clusterProcesses(s.pgdata); err != nil && len(left) > 0 {
		t.Fatalf("processes %v of the killed server outlived Stop", left)
	}
	if err2 := s.Stop(t.Context()); err2 != err {
		t.Fatalf("second Stop = %v, want the first result %v", err2, err)
	}

	s2 := startServer(t, Config{Dir: dir})
	if got := queryName(t, s2, 3); got != "cog" {
		t.Fatalf("after kill: name = %q, want cog", got)
	}
}

// A postmaster killed alone from outside (kill -9 of its pid) leaves its
// backends running for a moment; the next Start on the same Dir kills
// them instead of failing on the shared memory they still hold.
func TestStartAfterThePostmasterAloneWasKilled(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, Config{Dir: dir})
	conn := connect(t, s) // a backend, left open across the kill
	exec1(t, conn, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
	exec1(t, conn, "INSERT INTO items VALUES (3, 'cog')")
	// Stop the backends and auxiliary processes first (SIGSTOP) so that
	// they are sure to outlive the postmaster, as they can on a loaded
	// machine.
	pid := s.cmd.Process.Pid
	var children []int
	for _, p := range clusterProcesses(s.pgdata) {
		if p != pid {
			children = append(children, p)
			if err := syscall.Kill(p, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() { // a failed Start leaves them stopped
		for _, p := range children {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	})
	if len(children) == 0 {
		t.Fatal("the server has no processes beside its postmaster: the test proves nothing")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
	s2 := startServer(t, Config{Dir: dir})
	if got := queryName(t, s2, 3); got != "cog" {
		t.Fatalf("after the kill: name = %q, want cog", got)
	}
	for _, p := range children {
		if processAlive(p) {
			t.Fatalf("process %d of the dead postmaster still runs after the new Start", p)
		}
	}
}

// No connection gets in without the password, which the URL carries and
// Dir/password keeps (0600); a cluster an older build made with trust
// authentication is switched to the password at its next Start.
func TestConnectionsNeedThePassword(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, Config{Dir: dir})
	refused := func(s *Server) error {
		u, _ := url.Parse(s.URL())
		u.User = url.User(superuser)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, u.String())
		if err == nil {
			conn.Close(ctx)
		}
		return err
	}
	if err := refused(s); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("a connection without the password: %v, want refused asking for it", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, passwordName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v, want mode 0600", fi, err)
	}
	// Make it the cluster of an older build: no password, trust.
	conn := connect(t, s)
	exec1(t, conn, "ALTER ROLE shop PASSWORD NULL")
	conn.Close(t.Context())
	hba := filepath.Join(dir, pgdataName, "pg_hba.conf")
	b, _ := os.ReadFile(hba)
	if err := os.WriteFile(hba, []byte(strings.ReplaceAll(string(b), "scram-sha-256", "trust")), 0o600); err != nil {
		t.Fatal(err)
	}
	stop(t, s)
	s2 := startServer(t, Config{Dir: dir})
	if err := refused(s2); err == nil {
		t.Fatal("the old trust cluster still lets a connection in without the password")
	}
	exec1(t, connect(t, s2), "SELECT 1") // the password works
}

// OwnDatabase's role owns its database and what the superuser made there
// before, keeps its password across calls, and cannot read the write
// side's tables.
func TestOwnDatabase(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, Config{Dir: dir})
	ctx := t.Context()
	conn := connect(t, s)
	exec1(t, conn, "CREATE TABLE orders (id int PRIMARY KEY)")
	// What an older build left: the database and a schema made by the superuser.
	if _, err := s.Database(ctx, "reads"); err != nil {
		t.Fatal(err)
	}
	su, _ := url.Parse(s.URL())
	su.Path = "/reads"
	old, err := pgx.Connect(ctx, su.String())
	if err != nil {
		t.Fatal(err)
	}
	exec1(t, old, "CREATE SCHEMA shop")
	exec1(t, old, "CREATE TABLE shop.products (id int)")
	old.Close(ctx)

	u1, err := s.OwnDatabase(ctx, "reads", "reader")
	if err != nil {
		t.Fatal(err)
	}
	u2, err := s.OwnDatabase(ctx, "reads", "reader")
	if err != nil || u2 != u1 {
		t.Fatalf("second call: %v, URL changed %v", err, u2 != u1)
	}
	if pw, _ := url.Parse(u1); pw.User.Username() != "reader" || strings.Contains(s.URL(), func() string { p, _ := pw.User.Password(); return p }()) {
		t.Fatalf("URL %s: want the role reader with a password of its own", pw.Redacted())
	}
	reader, err := pgx.Connect(ctx, u1)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(ctx)
	exec1(t, reader, "DROP TABLE shop.products") // handed over: the role may drop it
	exec1(t, reader, "CREATE TABLE shop.reviews (id int)")
	// The write side's database: the role may connect (PUBLIC's default)
	// but reads nothing there.
	w, _ := url.Parse(u1)
	w.Path = "/shop"
	other, err := pgx.Connect(ctx, w.String())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if _, err := other.Exec(ctx, "SELECT * FROM orders"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("the role read the write side's table: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "password-reader")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the role's password file: %v %v", fi, err)
	}
}
