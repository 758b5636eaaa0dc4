// Package postgres runs a real PostgreSQL server as a child process, for
// development and tests.
//
// Start initialises a cluster in a directory (once), launches the postgres
// postmaster directly as a child of the current process, waits until it
// accepts connections and makes sure the configured database exists. The
// server listens on 127.0.0.1 only, has no Unix socket, and asks every
// connection for the password (SCRAM-SHA-256) kept in Config.Dir/password
// (mode 0600, made once); URL carries it. It is meant for local
// development and tests.
//
// Guarantees:
//   - Data survives restarts: the cluster lives in Config.Dir/pgdata and runs
//     with fsync=on; a later Start on the same Dir (on any port) sees it again.
//   - The server does not outlive its parent: on Linux it is started with a
//     parent-death signal (SIGQUIT, immediate shutdown), so if the process
//     that called Start dies, even by SIGKILL, the server goes down too.
//   - A server left running on the same Dir (by a crashed or abandoned
//     parent, or by another Server value that was never stopped) is shut down
//     by Start before the new one is launched.
//   - No connection gets in without the password: a cluster made by an
//     older build that trusted loopback connections is given the password
//     and switched to scram-sha-256 at its next Start.
//   - When the calling process runs as root, initdb and postgres (which both
//     refuse to run as root) run as the "postgres" account if it exists,
//     otherwise as "nobody"; Dir is chowned to that account.
package postgres

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// superuser is the cluster's bootstrap superuser (initdb -U).
	superuser       = "shop"
	defaultDatabase = "shop"

	// envBinDir names a directory holding initdb and postgres; when set it
	// is the only place searched.
	envBinDir = "SHOP_PG_BIN"

	readyTimeout = 30 * time.Second // postmaster start until it accepts connections
	stopTimeout  = 20 * time.Second // fast shutdown before SIGKILL
	staleTimeout = 15 * time.Second // stale postmaster SIGQUIT before SIGKILL
	killTimeout  = 10 * time.Second // exit after SIGKILL

	pgdataName  = "pgdata"
	initTmpName = "pgdata.initdb-tmp"
	logName     = "postgres.log"
	lockName    = ".embedded-postgres.lock"
)

// ErrBinariesNotFound is returned (wrapped, check with errors.Is) when
// neither $SHOP_PG_BIN, PATH nor the Debian install root provides both
// initdb and postgres. The wrapping error tells how to install them.
var ErrBinariesNotFound = errors.New("postgres: PostgreSQL server binaries (initdb, postgres) not found")

// pgInstallRoot is searched as <pgInstallRoot>/<version>/bin when the
// binaries are neither in $SHOP_PG_BIN nor on PATH; the highest version wins.
// It is a variable so tests can point it elsewhere.
var pgInstallRoot = "/usr/lib/postgresql"

// errPortInUse marks a start failure caused by the port being taken.
var errPortInUse = errors.New("port already in use")

// Config configures an embedded cluster.
type Config struct {
	Dir      string       // cluster directory (created if missing); data survives restarts
	Port     int          // TCP port on 127.0.0.1; 0 picks a free port
	Database string       // database to create if missing; default "shop"
	Logger   *slog.Logger // optional
}

// Server is a running PostgreSQL postmaster started by Start. Its methods are
// safe for concurrent use.
type Server struct {
	url    string
	pgdata string
	cmd    *exec.Cmd
	log    *slog.Logger

	done    chan struct{} // closed once the postmaster has exited and been reaped
	waitErr error         // exit status; written before done is closed

	stopOnce sync.Once
	stopErr  error
}

// binaries are the absolute paths of the executables used.
type binaries struct {
	initdb   string
	postgres string
}

// account is the unprivileged user the server runs as when we are root.
type account struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32
}

// Start makes sure a cluster exists in cfg.Dir, launches postgres as a child
// process listening on 127.0.0.1:cfg.Port and returns once it accepts
// connections and cfg.Database exists. ctx bounds only the start-up; it does
// not stop the server afterwards (call Stop for that).
//
// Binaries are taken from $SHOP_PG_BIN if set, else from PATH, else from the
// highest version under /usr/lib/postgresql/*/bin; if none is found the error
// wraps ErrBinariesNotFound, and nothing has been written to disk.
//
// On error no server started by this call is left running.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "postgres")

	if cfg.Dir == "" {
		return nil, errors.New("postgres: Config.Dir is required")
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("postgres: invalid port %d", cfg.Port)
	}
	database := cfg.Database
	if database == "" {
		database = defaultDatabase
	}
	if len(database) > 63 {
		return nil, fmt.Errorf("postgres: database name %q longer than 63 bytes", database)
	}

	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	acct, err := runAccount()
	if err != nil {
		return nil, err
	}

	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("postgres: resolve dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("postgres: create dir: %w", err)
	}
	if acct != nil {
		if err := ensureTraversable(dir, acct, logger); err != nil {
			return nil, err
		}
	}

	// Serialise concurrent Starts on the same Dir (in any process). The
	// lock is held only while starting: a later Start takes over instead.
	unlock, err := lockDir(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	pgdata := filepath.Join(dir, pgdataName)
	if err := stopStalePostmaster(ctx, pgdata, logger); err != nil {
		return nil, err
	}

	logPath := filepath.Join(dir, logName)
	if f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return nil, fmt.Errorf("postgres: create log file: %w", err)
	} else {
		f.Close()
	}
	if acct != nil {
		if err := chownTree(dir, acct); err != nil {
			return nil, err
		}
	}

	password, pwfile, err := ensurePassword(dir, acct)
	if err != nil {
		return nil, err
	}
	if err := ensureCluster(ctx, bins, dir, pgdata, logPath, pwfile, acct, logger); err != nil {
		return nil, err
	}

	var s *Server
	for attempt := 1; ; attempt++ {
		port := cfg.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		s, err = launch(ctx, bins, pgdata, port, database, password, logPath, acct, logger)
		if err == nil {
			break
		}
		// A port picked by us may be grabbed by someone else before
		// postgres binds it; pick another.
		if cfg.Port == 0 && errors.Is(err, errPortInUse) && attempt < 3 {
			logger.Warn("picked port was taken, retrying", "port", port, "err", err)
			continue
		}
		return nil, err
	}

	if err := requirePassword(ctx, s, password); err != nil {
		s.kill()
		return nil, err
	}
	if err := createDatabase(ctx, s, database); err != nil {
		s.kill()
		return nil, err
	}
	logger.Info("postgres ready", "url", redacted(s.url), "dir", dir, "pid", s.cmd.Process.Pid) // the password stays in the 0600 file
	return s, nil
}

// redacted is raw with its password, if any, masked.
func redacted(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// URL returns the connection URL of the configured database, e.g.
// postgres://shop:<password>@127.0.0.1:5433/shop?sslmode=disable.
func (s *Server) URL() string { return s.url }

// Stop shuts the server down with a fast shutdown (SIGINT: active
// transactions are rolled back, committed data is checkpointed) and waits for
// the postmaster to exit. If it has not exited after 20 s, or when ctx is done
// first, it and every other process of the cluster are killed with SIGKILL
// (committed data is still safe; the next Start runs crash recovery), and
// an error is returned once none of them runs.
//
// Stop is safe to call more than once and concurrently; later calls wait for
// the first and return its result. If the server had already exited (for
// example because another Start on the same Dir took it over), Stop returns
// nil.
func (s *Server) Stop(ctx context.Context) error {
	if s == nil {
		return nil
	}
	s.stopOnce.Do(func() { s.stopErr = s.stop(ctx) })
	return s.stopErr
}

func (s *Server) stop(ctx context.Context) error {
	pid := s.cmd.Process.Pid
	select {
	case <-s.done:
		s.log.Warn("postgres had already exited", "pid", pid, "exit", exitString(s.waitErr))
		return nil
	default:
	}

	s.log.Info("stopping postgres (fast shutdown)", "pid", pid)
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("postgres: signal pid %d: %w", pid, err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()

	var reason error
	select {
	case <-s.done:
		if s.waitErr != nil {
			return fmt.Errorf("postgres: pid %d exited abnormally during fast shutdown: %w", pid, s.waitErr)
		}
		s.log.Info("postgres stopped", "pid", pid)
		return nil
	case <-timer.C:
		reason = fmt.Errorf("fast shutdown did not finish within %s", stopTimeout)
	case <-ctx.Done():
		reason = ctx.Err()
	}

	s.log.Warn("killing postgres", "pid", pid, "reason", reason)
	if err := s.killHard(); err != nil {
		return fmt.Errorf("postgres: %w; %w", reason, err)
	}
	return fmt.Errorf("postgres: pid %d killed with SIGKILL: %w", pid, reason)
}

// kill aborts a server that failed to start (immediate shutdown).
func (s *Server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.done:
		return
	case <-time.After(staleTimeout):
	}
	_ = s.killHard()
}

// killHard kills the postmaster with SIGKILL, then whatever of its cluster
// still runs (see reapCluster), and returns once none of it is alive.
func (s *Server) killHard() error {
	pid := s.cmd.Process.Pid
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-s.done:
	case <-time.After(killTimeout):
		return fmt.Errorf("pid %d did not exit after SIGKILL", pid)
	}
	if _, gone := reapCluster(s.pgdata, killTimeout); !gone {
		return fmt.Errorf("processes of pid %d's cluster still alive %s after SIGKILL", pid, killTimeout)
	}
	return nil
}

// reapCluster kills with SIGKILL the processes left of the cluster of
// pgdata whose postmaster is gone (see clusterProcesses) and waits, at most
// timeout, until none is alive. A postmaster killed alone leaves its
// backends and auxiliary processes to notice its death and exit; until the
// last one has, the cluster's shared memory is still attached and a new
// postmaster refuses to start ("pre-existing shared memory block is still
// in use"). It reports how many it found left, and whether none is now.
func reapCluster(pgdata string, timeout time.Duration) (found int, gone bool) {
	deadline := time.Now().Add(timeout)
	for {
		left := clusterProcesses(pgdata)
		if len(left) == 0 {
			return found, true
		}
		found = max(found, len(left))
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return found, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// findBinaries locates initdb and postgres; see Start.
func findBinaries() (binaries, error) {
	hint := func(searched string) error {
		return fmt.Errorf("%w (searched %s): install PostgreSQL server binaries: apt-get install postgresql (or set %s to the directory containing initdb and postgres)",
			ErrBinariesNotFound, searched, envBinDir)
	}

	if dir := os.Getenv(envBinDir); dir != "" {
		if b, ok := binariesIn(dir); ok {
			return b, nil
		}
		return binaries{}, hint(envBinDir + "=" + dir)
	}

	initdb, err1 := exec.LookPath("initdb")
	postgres, err2 := exec.LookPath("postgres")
	if err1 == nil && err2 == nil {
		initdb, err1 = filepath.Abs(initdb)
		postgres, err2 = filepath.Abs(postgres)
		if err1 == nil && err2 == nil {
			return binaries{initdb: initdb, postgres: postgres}, nil
		}
	}

	dirs, _ := filepath.Glob(filepath.Join(pgInstallRoot, "*", "bin"))
	slices.SortFunc(dirs, func(a, b string) int {
		return compareVersions(filepath.Base(filepath.Dir(b)), filepath.Base(filepath.Dir(a))) // descending
	})
	for _, dir := range dirs {
		if b, ok := binariesIn(dir); ok {
			return b, nil
		}
	}
	return binaries{}, hint("PATH and " + filepath.Join(pgInstallRoot, "*", "bin"))
}

func binariesIn(dir string) (binaries, bool) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return binaries{}, false
	}
	b := binaries{initdb: filepath.Join(dir, "initdb"), postgres: filepath.Join(dir, "postgres")}
	return b, isExecutable(b.initdb) && isExecutable(b.postgres)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// compareVersions orders dotted numeric versions ("9.6" < "10" < "15");
// non-numeric parts sort before numeric ones.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	part := func(parts []string, i int) int {
		if i >= len(parts) {
			return -1
		}
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return -1
		}
		return n
	}
	for i := range max(len(as), len(bs)) {
		if c := cmp.Compare(part(as, i), part(bs, i)); c != 0 {
			return c
		}
	}
	return strings.Compare(a, b)
}

// runAccount returns the account to run the server as, or nil when the
// current process is not root (then it runs as ourselves).
func runAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		a := &account{name: name, uid: uint32(uid), gid: uint32(gid)}
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if g, err := strconv.ParseUint(id, 10, 32); err == nil {
					a.groups = append(a.groups, uint32(g))
				}
			}
		}
		if !slices.Contains(a.groups, a.gid) {
			a.groups = append(a.groups, a.gid)
		}
		return a, nil
	}
	return nil, errors.New("postgres: running as root, but neither a \"postgres\" nor a \"nobody\" account exists to run the server as (initdb and postgres refuse to run as root)")
}

func (a *account) credential() *syscall.Credential {
	return &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups}
}

// ensureTraversable makes sure acct can reach dir. Ancestors under
// os.TempDir() that we own (such as t.TempDir()'s 0700 parents) are opened up
// to 0755; any other blocking ancestor is an error.
func ensureTraversable(dir string, acct *account, logger *slog.Logger) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("postgres: resolve dir: %w", err)
	}
	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		tmp = filepath.Clean(os.TempDir())
	}
	var ancestors []string
	for p := filepath.Dir(real); ; p = filepath.Dir(p) {
		ancestors = append(ancestors, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	slices.Reverse(ancestors) // from / downwards
	for _, p := range ancestors {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || acct.canTraverse(fi.Mode().Perm(), st) {
			continue
		}
		rel, err := filepath.Rel(tmp, p)
		underTmp := err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
		if underTmp && int(st.Uid) == os.Geteuid() {
			mode := fi.Mode().Perm() | 0o055
			if err := os.Chmod(p, mode); err != nil {
				return fmt.Errorf("postgres: make %s traversable for user %q: %w", p, acct.name, err)
			}
			logger.Debug("opened temp directory for server account", "dir", p, "mode", fmt.Sprintf("%#o", mode), "user", acct.name)
			continue
		}
		return fmt.Errorf("postgres: directory %s (mode %#o) is not traversable by user %q (uid %d), which runs the server because this process is root; use a Dir elsewhere or allow access (chmod o+x %s)",
			p, fi.Mode().Perm(), acct.name, acct.uid, p)
	}
	return nil
}

func (a *account) canTraverse(perm fs.FileMode, st *syscall.Stat_t) bool {
	switch {
	case st.Uid == a.uid:
		return perm&0o100 != 0
	case slices.Contains(a.groups, st.Gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

func chownTree(dir string, acct *account) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(acct.uid), int(acct.gid))
	})
	if err != nil {
		return fmt.Errorf("postgres: chown %s to %s: %w", dir, acct.name, err)
	}
	return nil
}

// lockDir takes an exclusive flock on a file in dir, waiting while ctx allows.
func lockDir(ctx context.Context, dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("postgres: open lock file: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("postgres: lock %s: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("postgres: waiting for another Start on %s: %w", dir, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stopStalePostmaster shuts down a postmaster still running on pgdata, as
// left behind by a parent that died without stopping it.
func stopStalePostmaster(ctx context.Context, pgdata string, logger *slog.Logger) error {
	pidFile := filepath.Join(pgdata, "postmaster.pid")
	data, err := os.ReadFile(pidFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("postgres: read %s: %w", pidFile, err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		// Empty or torn file from a crash during start-up; postgres
		// refuses to start over it. We hold the directory lock, so no
		// other server of ours is starting.
		logger.Warn("removing malformed postmaster.pid", "file", pidFile)
		if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("postgres: remove malformed %s: %w", pidFile, err)
		}
		return nil
	}
	if !processAlive(pid) {
		// A postmaster killed alone (SIGKILL from outside) leaves its
		// backends to notice its death and exit; a new postmaster started
		// before they have is refused while they hold the shared memory.
		found, gone := reapCluster(pgdata, killTimeout)
		if !gone {
			return fmt.Errorf("postgres: processes of dead postmaster %d (from %s) did not exit", pid, pidFile)
		}
		if found > 0 {
			logger.Warn("killed the processes a dead postmaster left running", "pid", pid, "processes", found)
		}
		logger.Debug("postmaster.pid left by a dead server; postgres will replace it", "pid", pid)
		return nil
	}

	ours, err := isPostmasterOf(pid, pgdata)
	switch {
	case errors.Is(err, errUnverifiable):
		// No way to check on this platform; trust the file like pg_ctl.
	case err != nil:
		return fmt.Errorf("postgres: %s names running pid %d that could not be verified as its server: %w", pidFile, pid, err)
	case !ours:
		// The pid was reused by an unrelated process; postgres would
		// refuse to start while it lives.
		logger.Warn("postmaster.pid names an unrelated live process; removing it", "pid", pid)
		if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("postgres: remove stale %s: %w", pidFile, err)
		}
		return nil
	}

	logger.Warn("shutting down stale postgres left running on this dir", "pid", pid, "pgdata", pgdata)
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("postgres: signal stale postmaster %d: %w", pid, err)
	}
	if waitGone(ctx, pid, staleTimeout) {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("postgres: waiting for stale postmaster %d to exit: %w", pid, ctx.Err())
	}
	logger.Warn("stale postgres ignored SIGQUIT; killing it", "pid", pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if waitGone(ctx, pid, killTimeout) {
		return nil
	}
	return fmt.Errorf("postgres: stale postmaster %d (from %s) did not exit", pid, pidFile)
}

func waitGone(ctx context.Context, pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for processAlive(pid) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return false
	}
	return !isZombie(pid)
}

// ensureCluster runs initdb unless pgdata already holds a cluster. initdb
// writes to a scratch directory that is renamed into place on success, so an
// interrupted initdb never leaves a half-made pgdata behind.
func ensureCluster(ctx context.Context, bins binaries, dir, pgdata, logPath, pwfile string, acct *account, logger *slog.Logger) error {
	if _, err := os.Stat(filepath.Join(pgdata, "PG_VERSION")); err == nil {
		return nil
	}
	if _, err := os.Stat(pgdata); err == nil {
		return fmt.Errorf("postgres: %s exists but holds no cluster (no PG_VERSION); remove it to re-initialise", pgdata)
	}

	tmp := filepath.Join(dir, initTmpName)
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("postgres: remove leftover %s: %w", tmp, err)
	}
	logger.Info("initialising cluster", "pgdata", pgdata, "initdb", bins.initdb)
	start := time.Now()

	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bins.initdb,
		"-D", tmp, "-U", superuser, "--auth=scram-sha-256", "--pwfile="+pwfile, "-E", "UTF8", "--locale=C")
	cmd.Dir = dir
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if acct != nil {
		cmd.SysProcAttr.Credential = acct.credential()
	}
	runErr := cmd.Run()
	if f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0); err == nil {
		fmt.Fprintf(f, "---- initdb %s ----\n%s", time.Now().Format(time.RFC3339), out.Bytes())
		f.Close()
	}
	if runErr != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("postgres: initdb: %w\n%s", runErr, tail(out.Bytes(), 30))
	}
	if err := os.Rename(tmp, pgdata); err != nil {
		return fmt.Errorf("postgres: move new cluster into place: %w", err)
	}
	logger.Info("cluster initialised", "pgdata", pgdata, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// launch starts the postmaster and waits until it serves connections.
func launch(ctx context.Context, bins binaries, pgdata string, port int, database, password, logPath string, acct *account, logger *slog.Logger) (*Server, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("postgres: open log file: %w", err)
	}
	defer logf.Close() // the child keeps its own descriptor
	var logStart int64
	if fi, err := logf.Stat(); err == nil {
		logStart = fi.Size()
	}

	cmd := exec.Command(bins.postgres,
		"-D", pgdata,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=", // no Unix socket; argv is not shell-parsed, so no quotes
		"-c", "fsync=on",
		"-c", "shared_buffers=128MB",
		"-c", "max_connections=200",
	)
	cmd.Dir = pgdata
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = serverSysProcAttr()
	if acct != nil {
		cmd.SysProcAttr.Credential = acct.credential()
	}

	s := &Server{
		url: (&url.URL{
			Scheme:   "postgres",
			User:     url.UserPassword(superuser, password),
			Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Path:     "/" + database,
			RawQuery: "sslmode=disable",
		}).String(),
		pgdata: pgdata,
		cmd:    cmd,
		log:    logger,
		done:   make(chan struct{}),
	}

	// The parent-death signal fires when the OS thread that forked the
	// child exits, not the process (go.dev/issue/27505). Fork from a
	// locked thread that stays alive, blocked in Wait, as long as the
	// child does; the goroutine ends locked, so the thread is discarded
	// only after the child is gone.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("postgres: start %s: %w", bins.postgres, err)
	}
	logger.Debug("postmaster started", "pid", cmd.Process.Pid, "port", port)

	if err := s.waitReady(ctx, port, logPath, logStart); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}

// waitReady polls until the postmaster accepts connections for at most
// readyTimeout, failing early if it exits.
func (s *Server) waitReady(ctx context.Context, port int, logPath string, logStart int64) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	cfg, err := pgx.ParseConfig(s.adminURL())
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	fail := func(format string, args ...any) error {
		logTail := readLogTail(logPath, logStart)
		err := fmt.Errorf(format, args...)
		if strings.Contains(logTail, "Address already in use") {
			err = fmt.Errorf("%w (%w)", err, errPortInUse)
		}
		return fmt.Errorf("%w\n--- %s (tail) ---\n%s", err, logPath, logTail)
	}

	var lastErr error
	for {
		select {
		case <-s.done:
			return fail("postgres: server exited during start-up on port %d: %s", port, exitString(s.waitErr))
		default:
		}
		attemptCtx, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.ConnectConfig(attemptCtx, cfg)
		if err == nil {
			var dataDir string
			err = conn.QueryRow(attemptCtx, "SHOW data_directory").Scan(&dataDir)
			conn.Close(context.Background())
			cancelAttempt()
			if err == nil {
				select {
				case <-s.done:
					continue // report the exit above
				default:
				}
				if filepath.Clean(dataDir) != s.pgdata {
					return fail("postgres: port %d is served by another PostgreSQL server (data_directory %s)", port, dataDir)
				}
				return nil
			}
		}
		cancelAttempt()
		lastErr = err
		select {
		case <-ctx.Done():
			return fail("postgres: not accepting connections on port %d after %s: %w (last error: %v)", port, readyTimeout, ctx.Err(), lastErr)
		case <-s.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// adminURL points at the always-present "postgres" database.
func (s *Server) adminURL() string {
	u, _ := url.Parse(s.url)
	u.Path = "/postgres"
	return u.String()
}

// Database makes sure database exists (creating it if missing) and returns
// its connection URL, like URL's but naming database: another client of
// the cluster (e.g. the embedded FerretDB) gets a database of its own.
func (s *Server) Database(ctx context.Context, database string) (string, error) {
	if database == "" || len(database) > 63 {
		return "", fmt.Errorf("postgres: invalid database name %q", database)
	}
	if err := createDatabase(ctx, s, database); err != nil {
		return "", err
	}
	u, _ := url.Parse(s.url)
	u.Path = "/" + database
	return u.String(), nil
}

func createDatabase(ctx context.Context, s *Server, database string) error {
	conn, err := pgx.Connect(ctx, s.adminURL())
	if err != nil {
		return fmt.Errorf("postgres: connect to create database: %w", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", database).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: check database %q: %w", database, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{database}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created concurrently
		err = nil
	}
	if err != nil {
		return fmt.Errorf("postgres: create database %q: %w", database, err)
	}
	s.log.Info("created database", "database", database)
	return nil
}

// childEnv is the environment for initdb and postgres: ours minus libpq
// PG* variables and locale settings, plus LC_ALL=C for stable messages.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "LC_") || k == "LANG" || k == "LANGUAGE" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("postgres: pick free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// readLogTail returns the last lines written to the log since offset from.
func readLogTail(path string, from int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	const maxBytes = 8 << 10
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	start := max(from, fi.Size()-maxBytes)
	data, err := io.ReadAll(io.NewSectionReader(f, start, fi.Size()-start))
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	if start > from {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return "(log is empty)"
	}
	return tail(data, 30)
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// passwordName is the file under Config.Dir holding the superuser's
// password.
const passwordName = "password"

// ensurePassword returns the cluster's password, making it (32 random
// bytes, hex) the first time, and the file holding it: mode 0600, owned by
// acct when the server runs as another account (initdb reads it).
func ensurePassword(dir string, acct *account) (password, file string, err error) {
	file = filepath.Join(dir, passwordName)
	if password, err = ensureSecret(file); err != nil {
		return "", "", err
	}
	if acct != nil {
		if err := os.Chown(file, int(acct.uid), int(acct.gid)); err != nil {
			return "", "", fmt.Errorf("postgres: password file: %w", err)
		}
	}
	return password, file, nil
}

// requirePassword switches a cluster an older build made with trust
// authentication to scram-sha-256: it sets the superuser's password (the
// trusted connection lets it in) and reloads pg_hba.conf without trust.
// A cluster that already asks for the password is left alone.
func requirePassword(ctx context.Context, s *Server, password string) error {
	hba := filepath.Join(s.pgdata, "pg_hba.conf")
	b, err := os.ReadFile(hba)
	if err != nil {
		return fmt.Errorf("postgres: read pg_hba.conf: %w", err)
	}
	var lines []string
	trusted := false
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") && f[len(f)-1] == "trust" {
			line = strings.TrimSuffix(strings.TrimRight(line, " \t"), "trust") + "scram-sha-256"
			trusted = true
		}
		lines = append(lines, line)
	}
	if !trusted {
		return nil
	}
	conn, err := pgx.Connect(ctx, s.adminURL())
	if err != nil {
		return fmt.Errorf("postgres: connect to set the password: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SET password_encryption = 'scram-sha-256'"); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{superuser}.Sanitize()+" PASSWORD "+quoteLiteral(password)); err != nil {
		return fmt.Errorf("postgres: set the password: %w", err)
	}
	if err := os.WriteFile(hba, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		return fmt.Errorf("postgres: write pg_hba.conf: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("postgres: reload pg_hba.conf: %w", err)
	}
	s.log.Info("cluster switched from trust to password authentication", "pgdata", s.pgdata)
	return nil
}

// quoteLiteral quotes s as an SQL string literal (ALTER ROLE takes no
// parameters).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// OwnDatabase makes sure database exists and belongs to role, a login role
// of its own (made the first time, with a random password kept beside the
// cluster's, mode 0600), and returns the URL that connects to it as role.
// role owns the database and every schema and table in it (those an older
// build made as the superuser are handed over), and has no privilege on
// the other databases' tables: its password opens that database only.
// The embedded FerretDB connects with it, so the MongoDB stand-in's
// password is not the cluster's.
func (s *Server) OwnDatabase(ctx context.Context, database, role string) (string, error) {
	if database == "" || len(database) > 63 || role == "" || len(role) > 63 || role == superuser {
		return "", fmt.Errorf("postgres: invalid database %q or role %q", database, role)
	}
	password, err := ensureSecret(filepath.Join(filepath.Dir(s.pgdata), passwordName+"-"+role))
	if err != nil {
		return "", err
	}
	if err := createDatabase(ctx, s, database); err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, s.adminURL())
	if err != nil {
		return "", fmt.Errorf("postgres: connect to make role %s: %w", role, err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
		return "", err
	}
	verb := "CREATE ROLE "
	if exists {
		verb = "ALTER ROLE " // the file is the truth: a role left by a deleted file gets the new password
	}
	for _, q := range []string{
		"SET password_encryption = 'scram-sha-256'",
		verb + pgx.Identifier{role}.Sanitize() + " LOGIN PASSWORD " + quoteLiteral(password),
		"ALTER DATABASE " + pgx.Identifier{database}.Sanitize() + " OWNER TO " + pgx.Identifier{role}.Sanitize(),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return "", fmt.Errorf("postgres: role %s for database %s: %w", role, database, err)
		}
	}
	u, _ := url.Parse(s.url)
	u.Path = "/" + database
	admin := *u
	u.User = url.UserPassword(role, password)
	// Schemas and tables the superuser made there (FerretDB as an older
	// build ran it) go to role, which must be able to drop them.
	db, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return "", fmt.Errorf("postgres: connect to %s: %w", database, err)
	}
	defer db.Close(context.Background())
	handOver := `DO $$ DECLARE r record; BEGIN
	FOR r IN SELECT n.nspname FROM pg_namespace n JOIN pg_roles o ON o.oid = n.nspowner
		WHERE o.rolname = ` + quoteLiteral(superuser) + ` AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema' LOOP
		EXECUTE format('ALTER SCHEMA %I OWNER TO %I', r.nspname, ` + quoteLiteral(role) + `);
	END LOOP;
	FOR r IN SELECT schemaname, tablename FROM pg_tables
		WHERE tableowner = ` + quoteLiteral(superuser) + ` AND schemaname NOT IN ('pg_catalog', 'information_schema') LOOP
		EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', r.schemaname, r.tablename, ` + quoteLiteral(role) + `);
	END LOOP;
END $$`
	if _, err := db.Exec(ctx, handOver); err != nil {
		return "", fmt.Errorf("postgres: hand %s's tables over to %s: %w", database, role, err)
	}
	return u.String(), nil
}

// ensureSecret returns the secret kept in file, making it (32 random
// bytes, hex; mode 0600) the first time.
func ensureSecret(file string) (string, error) {
	if b, err := os.ReadFile(file); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("postgres: password: %w", err)
	}
	secret := hex.EncodeToString(buf)
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("postgres: save password: %w", err)
	}
	return secret, nil
}
