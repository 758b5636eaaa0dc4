package testbackend

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/mod/semver"
)

func TestParseBackend(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Kind
	}{
		{"", Embedded},
		{"embedded", Embedded},
		{"testcontainers", Testcontainers},
		{" testcontainers\n", Testcontainers},
	} {
		got, err := ParseBackend(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseBackend(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"docker", "Testcontainers", "1", "embedded,testcontainers"} {
		got, err := ParseBackend(in)
		if err == nil {
			t.Errorf("ParseBackend(%q) = %q, want an error", in, got)
			continue
		}
		for _, want := range []string{EnvBackend, fmt.Sprintf("%q", in), `"embedded"`, `"testcontainers"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("ParseBackend(%q) error %q does not name %s", in, err, want)
			}
		}
	}
}

func TestBackendReadsTheEnvironment(t *testing.T) {
	for in, want := range map[string]Kind{"": Embedded, "testcontainers": Testcontainers} {
		t.Setenv(EnvBackend, in)
		if got, err := Backend(); err != nil || got != want {
			t.Errorf("%s=%q: Backend() = %q, %v; want %q", EnvBackend, in, got, err, want)
		}
	}
	t.Setenv(EnvBackend, "podman")
	if _, err := Backend(); err == nil || !strings.Contains(err.Error(), EnvBackend) {
		t.Errorf("%s=podman: Backend() error = %v, want one naming %s", EnvBackend, err, EnvBackend)
	}
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfig(t *testing.T) {
	cfg, err := LoadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Config{Backend: Embedded, KafkaImage: KafkaImage, MongoImage: MongoImage, PostgresImage: PostgresImage}); cfg != want {
		t.Errorf("empty environment: %+v, want %+v", cfg, want)
	}
	cfg, err = LoadConfig(env(map[string]string{
		EnvBackend:       "testcontainers",
		EnvKafkaImage:    "confluentinc/confluent-local:7.6.1",
		EnvMongoImage:    "mongo:8.0",
		EnvPostgresImage: "postgres:16-alpine",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Config{Backend: Testcontainers, KafkaImage: "confluentinc/confluent-local:7.6.1", MongoImage: "mongo:8.0", PostgresImage: "postgres:16-alpine"}); cfg != want {
		t.Errorf("overrides: %+v, want %+v", cfg, want)
	}
	if _, err := LoadConfig(env(map[string]string{EnvBackend: "kind"})); err == nil || !strings.Contains(err.Error(), EnvBackend) {
		t.Errorf("%s=kind: LoadConfig error = %v, want one naming %s", EnvBackend, err, EnvBackend)
	}
}

// request applies opts the way a module's Run does, on a request for image.
func request(t *testing.T, image string, opts []testcontainers.ContainerCustomizer) testcontainers.GenericContainerRequest {
	t.Helper()
	req := testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{Image: image}, Started: true}
	for _, o := range opts {
		if err := o.Customize(&req); err != nil {
			t.Fatal(err)
		}
	}
	return req
}

// strategies flattens s into its log lines and ports.
func strategies(s wait.Strategy) (logs []string, occurrences []int, ports []string) {
	switch s := s.(type) {
	case *wait.MultiStrategy:
		for _, sub := range s.Strategies {
			l, o, p := strategies(sub)
			logs, occurrences, ports = append(logs, l...), append(occurrences, o...), append(ports, p...)
		}
	case *wait.LogStrategy:
		logs, occurrences = append(logs, s.Log), append(occurrences, s.Occurrence)
	case *wait.HostPortStrategy:
		ports = append(ports, string(s.Port))
	}
	return logs, occurrences, ports
}

func TestKafkaOptions(t *testing.T) {
	// The kafka module of testcontainers-go v0.40.0 runs only the Confluent
	// image, KRaft from 7.4.0 on.
	repo, tag, ok := strings.Cut(KafkaImage, ":")
	if !ok || repo != "confluentinc/confluent-local" || !semver.IsValid("v"+tag) || semver.Compare("v"+tag, "v7.4.0") < 0 {
		t.Errorf("KafkaImage = %q, want confluentinc/confluent-local at a pinned version >= 7.4.0", KafkaImage)
	}
	req := request(t, KafkaImage, KafkaOptions())
	for k, want := range map[string]string{
		"CLUSTER_ID":                      KafkaClusterID,
		"KAFKA_NUM_PARTITIONS":            "3", // as deploy/kafka/kafka.sh
		"KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
		"KAFKA_LOG_RETENTION_MS":          "-1",
	} {
		if got := req.Env[k]; got != want {
			t.Errorf("Env[%s] = %q, want %q", k, got, want)
		}
	}
	// The module waits for the broker in a post-start hook, after copying
	// the script that starts it; a WaitingFor strategy would run before and
	// wait for a port nothing listens on yet.
	if req.WaitingFor != nil {
		t.Errorf("KafkaOptions set WaitingFor %v: it would run before the module's start hook", req.WaitingFor)
	}
	if req.Image != KafkaImage {
		t.Errorf("options changed the image to %q", req.Image)
	}
}

func TestMongoOptions(t *testing.T) {
	if !strings.HasPrefix(MongoImage, "mongo:") || strings.HasSuffix(MongoImage, ":latest") {
		t.Errorf("MongoImage = %q, want a pinned mongo tag", MongoImage)
	}
	req := request(t, MongoImage, MongoOptions())
	for _, k := range []string{"MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD", "testcontainers.mongodb.replicaset_name"} {
		if v, ok := req.Env[k]; ok {
			t.Errorf("Env[%s] = %q: the shop's tests connect without credentials to a standalone server", k, v)
		}
	}
	logs, _, ports := strategies(req.WaitingFor)
	if !slices.Contains(logs, "Waiting for connections") || !slices.Contains(ports, "27017/tcp") {
		t.Errorf("wait strategy %v: want the \"Waiting for connections\" log line and port 27017/tcp", req.WaitingFor)
	}
}

func TestPostgresOptions(t *testing.T) {
	if !strings.HasPrefix(PostgresImage, "postgres:") || strings.HasSuffix(PostgresImage, ":latest") {
		t.Errorf("PostgresImage = %q, want a pinned postgres tag", PostgresImage)
	}
	req := request(t, PostgresImage, PostgresOptions())
	for k, want := range map[string]string{"POSTGRES_DB": "shop", "POSTGRES_USER": "shop", "POSTGRES_PASSWORD": PostgresPassword} {
		if got := req.Env[k]; got != want {
			t.Errorf("Env[%s] = %q, want %q", k, got, want)
		}
	}
	logs, occ, ports := strategies(req.WaitingFor)
	i := slices.Index(logs, "database system is ready to accept connections")
	if i < 0 || occ[i] != 2 || !slices.Contains(ports, "5432/tcp") {
		t.Errorf("wait strategy %v: want the ready log line twice and port 5432/tcp", req.WaitingFor)
	}
}

func TestDatabaseName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	seen := map[string]bool{}
	for _, name := range []string{"TestX", "TestX", "TestRelay/kafka/Ünïcode & spaces", strings.Repeat("TestLong", 20)} {
		got := DatabaseName(named{t, name})
		if !valid.MatchString(got) || seen[got] {
			t.Errorf("DatabaseName(%q) = %q: want a fresh identifier of at most 63 bytes", name, got)
		}
		seen[got] = true
	}
	if got := DatabaseName(named{t, "TestRelay/kafka"}); !strings.HasPrefix(got, "t_testrelay_kafka_") {
		t.Errorf("DatabaseName(TestRelay/kafka) = %q, want it recognisable", got)
	}
}

type named struct {
	testing.TB
	name string
}

func (n named) Name() string { return n.name }

// fakeTB records how the code under test ends t: Skip and Fatal stop the
// calling goroutine as the real ones do, and are recorded instead of
// reported.
type fakeTB struct {
	testing.TB
	mu            sync.Mutex
	skips, fatals []string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) end(to *[]string, msg string) {
	f.mu.Lock()
	*to = append(*to, msg)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Skip(args ...any)                 { f.end(&f.skips, fmt.Sprint(args...)) }
func (f *fakeTB) Skipf(format string, args ...any) { f.end(&f.skips, fmt.Sprintf(format, args...)) }
func (f *fakeTB) SkipNow()                         { f.end(&f.skips, "") }
func (f *fakeTB) Fatal(args ...any)                { f.end(&f.fatals, fmt.Sprint(args...)) }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.end(&f.fatals, fmt.Sprintf(format, args...))
}
func (f *fakeTB) FailNow()                          { f.end(&f.fatals, "FailNow") }
func (f *fakeTB) Error(args ...any)                 { f.record(fmt.Sprint(args...)) }
func (f *fakeTB) Errorf(format string, args ...any) { f.record(fmt.Sprintf(format, args...)) }
func (f *fakeTB) Fail()                             { f.record("Fail") }

func (f *fakeTB) record(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fatals = append(f.fatals, msg)
}

// outcome is how one call of Kafka, Mongo or Postgres ended.
type outcome struct {
	returned      any // what the call returned, nil when it did not return
	skips, fatals []string
}

// call runs fn on a fakeTB in a goroutine of its own, as the testing
// package runs a test, and reports how it ended.
func call[T any](t *testing.T, fn func(testing.TB) T) outcome {
	f := &fakeTB{TB: t}
	var out outcome
	done := make(chan struct{})
	go func() {
		defer close(done)
		v := fn(f)
		out.returned = v
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	out.skips, out.fatals = f.skips, f.fatals
	return out
}

// endpoints are the three entry points under test.
var endpoints = []struct {
	name string
	call func(*testing.T) outcome
}{
	{"Kafka", func(t *testing.T) outcome { return call(t, Kafka) }},
	{"Mongo", func(t *testing.T) outcome { return call(t, Mongo) }},
	{"Postgres", func(t *testing.T) outcome { return call(t, Postgres) }},
}

// wantSkip fails t unless o is exactly one skip whose message contains
// every one of want: no failure, no endpoint returned.
func wantSkip(t *testing.T, what string, o outcome, want ...string) {
	t.Helper()
	if o.returned != nil || len(o.fatals) > 0 || len(o.skips) != 1 {
		t.Fatalf("%s: returned %v, failed %q, skipped %q; want a skip and nothing else", what, o.returned, o.fatals, o.skips)
	}
	for _, w := range want {
		if !strings.Contains(o.skips[0], w) {
			t.Errorf("%s: skip message %q does not contain %q", what, o.skips[0], w)
		}
	}
}

// useProbe makes the Docker check answer with p for the rest of t.
func useProbe(t *testing.T, p func(time.Duration) error) {
	saved := probe
	probe = p
	docker.once, docker.err = sync.Once{}, nil
	t.Cleanup(func() {
		probe = saved
		docker.once, docker.err = sync.Once{}, nil
	})
}

func TestSkipsUnlessTestcontainersIsSelected(t *testing.T) {
	useProbe(t, func(time.Duration) error { panic("the Docker check ran although the backend is embedded") })
	for _, v := range []string{"", "embedded"} {
		t.Setenv(EnvBackend, v)
		for _, e := range endpoints {
			wantSkip(t, fmt.Sprintf("%s=%q %s", EnvBackend, v, e.name), e.call(t), EnvBackend+" is not testcontainers")
		}
	}
}

func TestUnknownBackendFails(t *testing.T) {
	t.Setenv(EnvBackend, "dokcer")
	for _, e := range endpoints {
		o := e.call(t)
		if o.returned != nil || len(o.skips) > 0 || len(o.fatals) != 1 || !strings.Contains(o.fatals[0], EnvBackend) || !strings.Contains(o.fatals[0], `"dokcer"`) {
			t.Errorf("%s with %s=dokcer: returned %v, skipped %q, failed %q; want one failure naming the variable and value", e.name, EnvBackend, o.returned, o.skips, o.fatals)
		}
	}
}

func TestSkipsWhenNoDockerEngineAnswers(t *testing.T) {
	useProbe(t, func(time.Duration) error {
		return errors.New("dial unix /var/run/docker.sock: connect: no such file or directory")
	})
	t.Setenv(EnvBackend, "testcontainers")
	for _, e := range endpoints {
		wantSkip(t, e.name, e.call(t), "SHOP_TEST_BACKEND=testcontainers: no Docker engine answers (dial unix /var/run/docker.sock")
	}
}

func TestDockerCheck(t *testing.T) {
	saved := dockerInfo
	t.Cleanup(func() { dockerInfo = saved })

	// A check that never answers (nor heeds its context) is abandoned.
	block := make(chan struct{})
	defer close(block)
	dockerInfo = func(context.Context) error { <-block; return nil }
	start := time.Now()
	err := checkDocker(100 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no answer within 100ms") || time.Since(start) > 5*time.Second {
		t.Errorf("hanging check: %v after %v, want \"no answer within 100ms\" promptly", err, time.Since(start))
	}

	// testcontainers panics when it finds no Docker host.
	dockerInfo = func(context.Context) error { panic(errors.New("rootless Docker not found")) }
	if err := checkDocker(time.Second); err == nil || !strings.Contains(err.Error(), "rootless Docker not found") {
		t.Errorf("panicking check: %v, want the panic as the error", err)
	}

	dockerInfo = func(context.Context) error { return nil }
	if err := checkDocker(time.Second); err != nil {
		t.Errorf("answering engine: %v", err)
	}

	if DockerCheckTimeout > 15*time.Second {
		t.Errorf("DockerCheckTimeout = %v: a run without Docker may wait that long once per test binary", DockerCheckTimeout)
	}
}

// TestSkipsOnThisMachine runs the real Docker check: where no Docker engine
// answers (as on the machine this package was written on) each entry point
// skips, saying so; where one answers there is nothing to check here
// (TestContainerBackends starts the containers).
func TestSkipsOnThisMachine(t *testing.T) {
	useProbe(t, checkDocker)
	t.Setenv(EnvBackend, "testcontainers")
	if err := dockerEngine(); err == nil {
		t.Skip("a Docker engine answers here: the no-Docker skip path is not exercised")
	}
	for _, e := range endpoints {
		wantSkip(t, e.name, e.call(t), "SHOP_TEST_BACKEND=testcontainers: no Docker engine answers (")
	}
	// And through a real subtest: it must end skipped, not failed and not
	// past the call.
	var returned bool
	t.Run("Kafka", func(t *testing.T) {
		Kafka(t)
		returned = true
	})
	if returned {
		t.Error("Kafka(t) returned brokers without a Docker engine")
	}
	// t.Run reports a failed subtest as a failure of t; a skipped one only
	// as skipped, which this checks.
	if !t.Failed() {
		var skipped bool
		t.Run("Mongo", func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			Mongo(t)
		})
		if !skipped {
			t.Error("Mongo(t) did not skip without a Docker engine")
		}
	}
}

// TestContainerBackends is the container path end to end: with
// SHOP_TEST_BACKEND=testcontainers and a Docker engine it starts the three
// containers and talks to each; otherwise it skips, saying why.
func TestContainerBackends(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	brokers := Kafka(t) // skips here without SHOP_TEST_BACKEND=testcontainers or Docker
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		t.Errorf("Kafka %v: %v", brokers, err)
	}

	uri := Mongo(t)
	mc, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = mc.Disconnect(context.WithoutCancel(ctx)) }()
	db := DatabaseName(t)
	if _, err := mc.Database(db).Collection("c").InsertOne(ctx, map[string]any{"_id": 1}); err != nil {
		t.Errorf("MongoDB %s: %v", uri, err)
	}

	url1, url2 := Postgres(t), Postgres(t)
	if url1 == url2 {
		t.Errorf("two Postgres calls gave the same database %s", url1)
	}
	conn, err := pgx.Connect(ctx, url1)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var name string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil || !strings.HasPrefix(name, "t_testcontainerbackends_") {
		t.Errorf("PostgreSQL %s: current_database() = %q, %v", url1, name, err)
	}
}
