//go:build !linux

package postgres

import (
	"errors"
	"syscall"
)

var errUnverifiable = errors.New("process identity cannot be verified on this platform")

// serverSysProcAttr: outside Linux there is no parent-death signal, so a
// server whose parent crashes keeps running until the next Start on its Dir
// shuts it down.
func serverSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

func isPostmasterOf(pid int, pgdata string) (bool, error) { return false, errUnverifiable }

func isZombie(pid int) bool { return false }

// clusterProcesses: outside Linux the processes of a cluster cannot be
// told; a new postmaster started too early fails and says so.
func clusterProcesses(pgdata string) []int { return nil }
