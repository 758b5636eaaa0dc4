package postgres

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
)

// Tool returns the absolute path of another program of the PostgreSQL
// installation whose server Start runs (pgbench, psql, pg_dump, …), so that
// the tool and the server have the same version.
//
// The server binary is found as Start finds it ($SHOP_PG_BIN, PATH, then
// /usr/lib/postgresql/<highest>/bin). The tool is looked for beside it: first
// in the directory of the resolved binary, so that a PATH entry such as
// /usr/local/bin/postgres linking to /usr/lib/postgresql/15/bin/postgres
// finds /usr/lib/postgresql/15/bin/pgbench, then in the directory of the
// link itself. The error wraps ErrBinariesNotFound when there is no server,
// or fs.ErrNotExist when the tool is not beside it.
func Tool(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, filepath.Separator) || strings.ContainsRune(name, '/') {
		return "", fmt.Errorf("postgres: tool name %q must be a bare program name", name)
	}
	bins, err := findBinaries()
	if err != nil {
		return "", err
	}
	var dirs []string
	if real, err := filepath.EvalSymlinks(bins.postgres); err == nil {
		dirs = append(dirs, filepath.Dir(real))
	}
	if d := filepath.Dir(bins.postgres); !slices.Contains(dirs, d) {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("postgres: %s not found beside the server binary %s (searched %s): %w",
		name, bins.postgres, strings.Join(dirs, ", "), fs.ErrNotExist)
}
