// Command shop is the one binary of shopstream. Subcommands:
//
//	shop dev      every component plus embedded infrastructure, for a laptop
//	shop run      chosen components against real infrastructure
//	shop infra    the embedded infrastructure alone, for `shop run` processes
//	shop topics   the event-log topics with partitions and end offsets
//	shop dlq      list the dead letters, or send them back to their topic
//	shop migrate  apply the PostgreSQL migrations
//
// Every flag can also be set by an environment variable SHOP_<FLAG>, with
// dashes as underscores (--data-dir → SHOP_DATA_DIR); a flag on the command
// line wins. The configuration is printed at start, secrets masked.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"shopstream/internal/platform/password"
)

func main() {
	// Password hashes run on threads of their own at a lower priority; the
	// extra Ps let the other goroutines run while they do (see
	// password.Procs). It fixes GOMAXPROCS: a change of the container's
	// CPU limit no longer updates it.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + password.Procs())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "shop:", err)
		}
		stop()
		os.Exit(2)
	}
}

const usage = `usage: shop <command> [flags]

commands:
  dev       run every component with embedded Kafka, schema registry, MongoDB (FerretDB) and PostgreSQL
  run       run --components against real infrastructure (--data-dir: that of a running shop infra)
  infra     the embedded infrastructure alone (Kafka unless --brokers, registry, MongoDB, PostgreSQL, SMTP, card PSP, SEPA bank); writes <data-dir>/endpoints.json
  topics    list the event-log topics with partitions and end offsets
  dlq       list (dlq list) or send back (dlq redrive --topic T) the records processors dead-lettered
  migrate   apply the PostgreSQL migrations
  loadtest  drive a shop with simulated shoppers (a Black Friday spike), check the invariants, write a report with charts
  replay    rebuild a read model from the log while the shop serves (replay products|orders), or --verify it
  schemas   check the .avsc history against the compatibility policy (schemas check [--registry-url URL]), or lock new versions
  asyncapi  write the AsyncAPI 3.0 document of the event log (-o file; stdout by default)
  acls      print, or --apply, the Kafka ACLs a principal running --components needs, and no more

Run 'shop <command> -h' for its flags.`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "dev":
		return runDev(ctx, rest, getenv, stdout, stderr)
	case "run":
		return runRun(ctx, rest, getenv, stdout, stderr)
	case "infra":
		return runInfra(ctx, rest, getenv, stdout, stderr)
	case "topics":
		return runTopics(ctx, rest, getenv, stdout, stderr)
	case "dlq":
		return runDLQ(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "loadtest":
		return runLoadtest(ctx, rest, getenv, stdout, stderr)
	case "replay":
		return runReplay(ctx, rest, getenv, stdout, stderr)
	case "asyncapi":
		return runAsyncAPI(ctx, rest, getenv, stdout, stderr)
	case "schemas":
		return runSchemas(ctx, rest, getenv, stdout, stderr)
	case "acls":
		return runACLs(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
