package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"shopstream/internal/platform/eventlog"
	"shopstream/schemas"
)

const schemasUsage = `usage: shop schemas check [--dir DIR] [--registry-url URL]
       shop schemas lock [--dir DIR]

check  verifies the .avsc history against the contract policy (` + schemas.Policy + `):
       every pair of versions of each event type, and every published version
       unchanged (` + schemas.LockFile + `); with --registry-url, also through that
       registry's compatibility API. Exits 1 naming each subject and reason.
lock   records the versions not yet published in ` + schemas.LockFile + ` (never changes
       an entry already there); run it when you add a version.`

func runSchemas(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, schemasUsage)
		return errors.New("schemas: give check or lock")
	}
	sub, rest := args[0], args[1:]
	fs := newFlags("schemas "+sub, stderr)
	dir := fs.String("dir", "", "folder of the .avsc files and "+schemas.LockFile+" (default: the schemas built into this binary; lock: schemas/avro)")
	var registryURL *string
	switch sub {
	case "check":
		registryURL = fs.String("registry-url", "", "also check through this schema registry's compatibility API (Confluent API)")
	case "lock":
	default:
		fmt.Fprintln(stderr, schemasUsage)
		return fmt.Errorf("schemas: unknown subcommand %q: give check or lock", sub)
	}
	if err := parse(fs, rest, getenv); err != nil {
		return err
	}
	if sub == "lock" {
		return lockSchemas(cmp.Or(*dir, filepath.Join("schemas", "avro")), stdout)
	}
	src := schemas.Embedded()
	where := "the schemas built into this binary"
	if *dir != "" {
		src, where = os.DirFS(*dir), *dir
	}
	report, err := schemas.Check(src)
	if err != nil {
		return fmt.Errorf("--dir %s: %w", where, err)
	}
	problems := report.Problems
	versions := 0
	for _, t := range report.Catalog.Types() {
		versions += len(t.Versions())
	}
	fmt.Fprintf(stdout, "offline: %d subjects, %d versions of %s checked against %s\n", len(report.Catalog.Types()), versions, where, schemas.Policy)
	for _, v := range report.Unpublished {
		fmt.Fprintf(stdout, "  new: %s v%d (%s) is compatible and not yet in %s: run `shop schemas lock`\n", v.Type.Subject(), v.Number, v.File, schemas.LockFile)
	}
	for _, t := range report.Catalog.Types() {
		for _, v := range t.Versions() {
			if v.Retired != "" {
				fmt.Fprintf(stdout, "  retired: %s v%d: %s\n", t.Subject(), v.Number, v.Retired)
			}
		}
	}
	if *registryURL != "" {
		reg, err := sr.NewClient(sr.URLs(*registryURL))
		if err != nil {
			return fmt.Errorf("--registry-url %s: %w", *registryURL, err)
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		got, err := eventlog.CheckRegistry(rctx, reg, report.Catalog)
		if err != nil {
			return fmt.Errorf("--registry-url %s: %w", *registryURL, err)
		}
		fmt.Fprintf(stdout, "registry %s: %d subjects checked through its compatibility API\n", *registryURL, len(report.Catalog.Types()))
		problems = append(problems, got...)
	}
	for _, p := range problems {
		fmt.Fprintf(stdout, "BREAKING %s\n", p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("schemas check: %d breaches of the %s policy", len(problems), schemas.Policy)
	}
	fmt.Fprintf(stdout, "ok: every subject meets %s\n", schemas.Policy)
	return nil
}

// lockSchemas adds the unpublished, compatible versions of dir to its lock.
func lockSchemas(dir string, stdout io.Writer) error {
	report, err := schemas.Check(os.DirFS(dir))
	if err != nil {
		return fmt.Errorf("--dir %s: %w", dir, err)
	}
	if len(report.Problems) > 0 {
		for _, p := range report.Problems {
			fmt.Fprintf(stdout, "BREAKING %s\n", p)
		}
		return fmt.Errorf("schemas lock: %d breaches of the %s policy: fix them first", len(report.Problems), schemas.Policy)
	}
	lock, err := schemas.ReadLock(os.DirFS(dir))
	if err != nil {
		return err
	}
	path := filepath.Join(dir, schemas.LockFile)
	if err := os.WriteFile(path, lock.Locked(report.Unpublished).Marshal(), 0o644); err != nil {
		return err
	}
	for _, v := range report.Unpublished {
		fmt.Fprintf(stdout, "locked %s (%s v%d)\n", v.File, v.Type.Subject(), v.Number)
	}
	fmt.Fprintf(stdout, "%s: %d published versions\n", path, len(lock)+len(report.Unpublished))
	return nil
}
