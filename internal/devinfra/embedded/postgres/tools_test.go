package postgres

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestToolBesideServer(t *testing.T) {
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
	oldRoot := pgInstallRoot
	pgInstallRoot = t.TempDir()
	t.Cleanup(func() { pgInstallRoot = oldRoot })
	t.Setenv(envBinDir, "")

	// A Debian-style install, reached through links on PATH (as
	// /usr/local/bin/postgres -> /usr/lib/postgresql/15/bin/postgres).
	real := filepath.Join(pgInstallRoot, "15", "bin")
	fake(real, "initdb", "postgres", "pgbench")
	links := t.TempDir()
	for _, n := range []string{"initdb", "postgres"} {
		if err := os.Symlink(filepath.Join(real, n), filepath.Join(links, n)); err != nil {
			t.Fatal(err)
		}
	}
	fake(links, "psql") // only beside the link
	t.Setenv("PATH", links)

	for name, want := range map[string]string{
		"pgbench": filepath.Join(real, "pgbench"),
		"psql":    filepath.Join(links, "psql"),
	} {
		got, err := Tool(name)
		if err != nil || got != want {
			t.Errorf("Tool(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := Tool("pg_dump"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing tool: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := Tool("../15/bin/pgbench"); err == nil {
		t.Error("a path was accepted as a tool name")
	}

	t.Setenv("PATH", "")
	pgInstallRoot = t.TempDir()
	if _, err := Tool("pgbench"); !errors.Is(err, ErrBinariesNotFound) {
		t.Errorf("no server: err = %v, want ErrBinariesNotFound", err)
	}
}
