package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/testinfra/kafkatest"
	"shopstream/schemas"
)

func runShop(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	return out.String(), errb.String(), err
}

func TestUsageErrorsNameTheProblem(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no command", nil, nil, "no command"},
		{"unknown command", nil, []string{"deploy"}, `unknown command "deploy"`},
		{"unknown flag", nil, []string{"topics", "--brokres", "x"}, "brokres"},
		{"bad int flag", nil, []string{"dev", "--postgres-port", "many"}, "postgres-port"},
		{"bad env value", map[string]string{"SHOP_POSTGRES_PORT": "many"}, []string{"dev"}, "SHOP_POSTGRES_PORT"},
		{"bad log level", nil, []string{"dev", "--log-level", "loud", "--data-dir", t.TempDir()}, "--log-level"},
		{"unknown component", nil, []string{"run", "--components", "gateway,kitchen"}, `unknown component "kitchen"`},
		{"stray argument", nil, []string{"topics", "now"}, `unexpected argument "now"`},
		{"no running dev", nil, []string{"topics", "--data-dir", t.TempDir()}, "--brokers"},
		{"replay without projection", nil, []string{"replay", "--data-dir", t.TempDir()}, "name the projection to rebuild: listing, listing_heads, orders, products"},
		{"replay of an unknown projection", nil, []string{"replay", "carts"}, `unknown projection "carts": give one of listing, listing_heads, orders, products`},
		{"replay brokers alone", nil, []string{"replay", "products", "--brokers", "127.0.0.1:1"}, "--brokers needs --registry-url and --mongo-uri"},
		{"replay of no running dev", nil, []string{"replay", "products", "--data-dir", t.TempDir()}, "--target or --brokers"},
		{"replay negative drop-after", nil, []string{"replay", "products", "--drop-after", "-1s"}, "--drop-after"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, err := runShop(t, c.env, c.args...)
			if err == nil {
				t.Fatal("want an error")
			}
			if msg := err.Error() + stderr; !strings.Contains(msg, c.want) {
				t.Fatalf("message %q does not mention %q", msg, c.want)
			}
		})
	}
}

func TestEnvFillsFlagsAndCommandLineWins(t *testing.T) {
	fs := newFlags("x", &bytes.Buffer{})
	a := fs.String("data-dir", "d", "")
	b := fs.String("http", "h", "")
	env := map[string]string{"SHOP_DATA_DIR": "/env/dir", "SHOP_HTTP": "env:1"}
	if err := parse(fs, []string{"--http", "cli:2"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *a != "/env/dir" || *b != "cli:2" {
		t.Fatalf("data-dir %q http %q", *a, *b)
	}
}

func TestConfigMasksSecrets(t *testing.T) {
	fs := newFlags("x", &bytes.Buffer{})
	fs.String("postgres-url", "postgres://shop:hunter2@db:5432/shop", "")
	fs.String("smtp-password", "hunter2", "")
	var out bytes.Buffer
	printConfig(&out, fs)
	if strings.Contains(out.String(), "hunter2") {
		t.Fatalf("secret printed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "postgres://shop:xxxxx@db:5432/shop") {
		t.Fatalf("url not shown masked:\n%s", out.String())
	}
}

// `shop topics` lists every event-log topic with partitions and end
// offsets, on kfake and on real Kafka.
func TestTopicsListsTheEventLog(t *testing.T) {
	kafkatest.ForEachBroker(t, func(t *testing.T, brokers []string) {
		cl := kafkatest.Client(t, brokers)
		rec := &kgo.Record{Topic: schemas.TopicSepaRequests, Value: []byte("x")}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		out, stderr, err := runShop(t, nil, "topics", "--brokers", strings.Join(brokers, ","))
		if err != nil {
			t.Fatalf("%v: %s", err, stderr)
		}
		for _, spec := range schemas.Topics() {
			if !strings.Contains(out, spec.Name) {
				t.Errorf("topic %s missing from:\n%s", spec.Name, out)
			}
		}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == schemas.TopicSepaRequests && (f[1] != "1" || f[2] == "0") {
				t.Errorf("sepa topic line %q: want 1 partition and records", line)
			}
		}
	})
}
