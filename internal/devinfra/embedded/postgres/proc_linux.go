//go:build linux

package postgres

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// errUnverifiable means the platform cannot tell which process a pid is.
var errUnverifiable = errors.New("process identity cannot be verified on this platform")

// serverSysProcAttr returns the attributes for the postmaster: its own
// process group (a terminal's Ctrl-C reaches us, and we shut it down
// deliberately) and SIGQUIT (immediate shutdown) when its parent dies.
func serverSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGQUIT}
}

// isPostmasterOf reports whether pid is a postmaster serving pgdata: a
// postmaster always chdirs into its data directory.
func isPostmasterOf(pid int, pgdata string) (bool, error) {
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // exited meanwhile
	}
	if err != nil {
		return false, err
	}
	want, err := filepath.EvalSymlinks(pgdata)
	if err != nil {
		return false, err
	}
	return filepath.Clean(cwd) == want, nil
}

// isZombie reports whether pid has exited but not been reaped (the init
// process of some containers never reaps orphans).
func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// Format: pid (comm) state ...; comm may contain spaces or parens.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] == 'Z' || s[i+2] == 'X'
}

// clusterProcesses lists the live (not zombie) processes of the cluster of
// pgdata: postgres processes whose working directory is pgdata, as every
// process of a cluster has (each backend is a session of its own, so the
// postmaster's process group does not hold them).
func clusterProcesses(pgdata string) []int {
	want, err := filepath.EvalSymlinks(pgdata)
	if err != nil {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := "/proc/" + e.Name()
		if cwd, err := os.Readlink(dir + "/cwd"); err != nil || filepath.Clean(cwd) != want {
			continue
		}
		if exe, err := os.Readlink(dir + "/exe"); err != nil || filepath.Base(exe) != "postgres" {
			continue
		}
		if !isZombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
