package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/platform/docstore"
	"shopstream/internal/platform/eventlog"
	"shopstream/projectors/readmodels"
	"shopstream/projectors/replay"
	"shopstream/schemas"
)

func projectionNames() string { return strings.Join(readmodels.Names(), ", ") }

func runReplay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", stderr)
	verify := fs.Bool("verify", false, "rebuild into a scratch collection and compare it document by document with the live one, instead of switching")
	dataDir := fs.String("data-dir", ".shop", dataDirUsage+" (used when neither --admin-target nor --brokers is given)")
	adminURL := fs.String("admin-target", "", adminTargetUsage)
	var brokers listFlag
	fs.Var(&brokers, "brokers", brokersUsage+" (then --registry-url and --mongo-uri too)")
	kafka := addKafkaSecFlags(fs)
	registryURL := fs.String("registry-url", "", "schema registry URL (Confluent API), with --brokers")
	mongoURI := fs.String("mongo-uri", "", "MongoDB URI, with --brokers")
	mongoDB := fs.String("mongo-db", "shop", "MongoDB database of the read models")
	dropAfter := fs.Duration("drop-after", replay.DefaultDropAfter, "how long the old collection is kept after the switch, for readers still on it")
	switchLag := fs.Int64("switch-lag", replay.DefaultSwitchLag, "switch readers when the new collection is at most this many records behind the head")
	// The projection's name may come before, after or among the flags.
	if err := fs.Parse(args); err != nil {
		return err
	}
	name, rest := fs.Arg(0), fs.Args()[min(1, fs.NArg()):]
	if err := parse(fs, rest, getenv); err != nil {
		return err
	}
	job, ok := readmodels.Lookup(name)
	if !ok {
		if name == "" {
			return fmt.Errorf("shop replay: name the projection to rebuild: %s", projectionNames())
		}
		return fmt.Errorf("shop replay: unknown projection %q: give one of %s", name, projectionNames())
	}
	if _, err := kafka.security(); err != nil {
		return err
	}
	if *dropAfter < 0 {
		return fmt.Errorf("--drop-after %s: must not be negative", *dropAfter)
	}
	if *switchLag < 0 {
		return fmt.Errorf("--switch-lag %d: must not be negative", *switchLag)
	}
	e, err := infrastructure(ctx, brokers, *registryURL, *mongoURI, *adminURL, *dataDir)
	if err != nil {
		return err
	}
	cat, err := schemas.Load()
	if err != nil {
		return err
	}
	rc, err := sr.NewClient(sr.URLs(e.RegistryURL))
	if err != nil {
		return fmt.Errorf("--registry-url %s: %w", e.RegistryURL, err)
	}
	mc, err := mongo.Connect(options.Client().ApplyURI(e.MongoURI))
	if err != nil {
		return fmt.Errorf("--mongo-uri: %w", err)
	}
	defer mc.Disconnect(context.WithoutCancel(ctx)) //nolint:errcheck // best effort at exit
	cfg := replay.Config{
		Kafka: append([]kgo.Opt{kgo.SeedBrokers(e.Brokers...)}, kafka.opts()...), Serde: eventlog.NewSerde(rc, cat), Store: docstore.New(mc.Database(*mongoDB)),
		Logger: slog.New(slog.DiscardHandler), Progress: stderr, DropAfter: *dropAfter, SwitchLag: *switchLag,
	}
	if *verify {
		v, err := job.Verify(ctx, cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "verified %s: %d documents of %s compared with a replay of %d events (%.0f events/s): %d differences\n",
			name, v.Compared, v.Live, v.Events, v.Rate(), v.Differences)
		for _, d := range v.Examples {
			printDifference(stdout, d)
		}
		if v.Differences > 0 {
			return fmt.Errorf("%s differs from the log in %d documents (invariant I4)", name, v.Differences)
		}
		return nil
	}
	r, err := job.Rebuild(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replayed %s: %d events (%d poison skipped) into %s in %s: %.0f events/s, %d documents; readers switched from %s, which is dropped\n",
		name, r.Events, r.Poison, r.To, r.Elapsed.Round(time.Millisecond), r.Rate(), r.Documents, r.From)
	return nil
}

// infrastructure finds the infrastructure a tool works against (`shop
// replay`, `shop loadtest --target`): the flags of external
// infrastructure, or a running `shop dev` by its HTTP address, or a
// running `shop infra` or `shop dev` by its data directory.
func infrastructure(ctx context.Context, brokers []string, registryURL, mongoURI, adminURL, dataDir string) (devstack.Endpoints, error) {
	switch {
	case len(brokers) > 0:
		if registryURL == "" || mongoURI == "" {
			return devstack.Endpoints{}, errors.New("--brokers needs --registry-url and --mongo-uri too")
		}
		return devstack.Endpoints{Brokers: brokers, RegistryURL: registryURL, MongoURI: mongoURI}, nil
	case adminURL != "":
		e, err := devEndpoints(ctx, adminURL)
		if err != nil {
			return e, fmt.Errorf("%w; or give --data-dir of the `shop infra` it runs on, or --brokers, --registry-url and --mongo-uri", err)
		}
		return e, nil
	}
	e, err := devstack.ReadEndpoints(dataDir)
	if err != nil {
		return e, fmt.Errorf("%w; or give --target or --brokers", err)
	}
	return e, nil
}

// devEndpoints asks the admin listener of a running `shop dev` at base
// (--admin-target) for its infrastructure.
func devEndpoints(ctx context.Context, base string) (devstack.Endpoints, error) {
	const flag = "--admin-target"
	var e devstack.Endpoints
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/dev/endpoints", nil)
	if err != nil {
		return e, fmt.Errorf("%s %s: %w", flag, base, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return e, fmt.Errorf("%s %s: %w", flag, base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return e, fmt.Errorf("%s %s: GET /dev/endpoints answered %s: is it a `shop dev`?", flag, base, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		return e, fmt.Errorf("%s %s: %w", flag, base, err)
	}
	return e, nil
}

// printDifference shows one document that differs: only the fields that do.
func printDifference(w io.Writer, d replay.Difference) {
	switch {
	case d.Live == nil:
		fmt.Fprintf(w, "  %s: missing from the live read model\n", d.ID)
	case d.Rebuilt == nil:
		fmt.Fprintf(w, "  %s: in the live read model, not in the log\n", d.ID)
	default:
		fmt.Fprintf(w, "  %s:\n", d.ID)
		for _, f := range d.Fields {
			fmt.Fprintf(w, "    %s: live %v, log %v\n", f, d.Live[f], d.Rebuilt[f])
		}
	}
}
