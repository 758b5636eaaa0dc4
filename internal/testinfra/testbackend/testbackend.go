// Package testbackend selects where integration tests get their Kafka,
// MongoDB and PostgreSQL from (architecture §5, test level 4).
//
// SHOP_TEST_BACKEND picks the backend:
//
//   - unset or "embedded" (the default): nothing changes. Tests use the
//     embedded servers (kfake, FerretDB, the private PostgreSQL cluster) and,
//     for real Apache Kafka, the brokers named by SHOP_TEST_KAFKA_BROKERS.
//   - "testcontainers": Kafka, Mongo and Postgres start real images with the
//     testcontainers-go modules (KafkaImage, MongoImage, PostgresImage, each
//     overridable by its SHOP_TEST_*_IMAGE variable). Where no Docker engine
//     answers, they skip the test, saying so; they never pass silently.
//
// Any other value fails the test, naming the variable and the allowed values.
//
// Lifetime: each container starts at most once per test binary, on the
// first call that needs it, and is shared by every later test of that binary
// (sync.Once; a start that fails is not retried, every caller fails with the
// same error). It is not stopped at the end of the test that started it:
// testcontainers' reaper (Ryuk) removes it when the test binary exits, and a
// package that wants it gone earlier, or runs with
// TESTCONTAINERS_RYUK_DISABLED=true, calls Terminate from its TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		_ = testbackend.Terminate(context.Background())
//		os.Exit(code)
//	}
//
// Because the servers are shared, tests must not assume they start empty:
// Kafka tests read from the end offsets they saw before producing (as on the
// CI broker, see kafkatest.From), Postgres gives every call a database of
// its own, and Mongo tests pick their database with DatabaseName.
package testbackend

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go"
	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"
	tcmongo "github.com/testcontainers/testcontainers-go/modules/mongodb"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/wait"

	"shopstream/internal/devinfra/embedded/postgres"
)

// The variables read by this package.
const (
	EnvBackend       = "SHOP_TEST_BACKEND"
	EnvKafkaImage    = "SHOP_TEST_KAFKA_IMAGE"
	EnvMongoImage    = "SHOP_TEST_MONGO_IMAGE"
	EnvPostgresImage = "SHOP_TEST_POSTGRES_IMAGE"
)

// Kind is a value of SHOP_TEST_BACKEND.
type Kind string

// The backends.
const (
	Embedded       Kind = "embedded"
	Testcontainers Kind = "testcontainers"
)

// The pinned default images.
const (
	// KafkaImage: the testcontainers-go kafka module v0.40.0 drives the
	// Confluent image's start scripts (/etc/confluent/docker), so it runs
	// confluentinc/confluent-local (KRaft, 7.4.0 or later) and not
	// apache/kafka. 7.9.0 ships Apache Kafka 3.9.0, the newest 3.x.
	KafkaImage = "confluentinc/confluent-local:7.9.0"
	// MongoImage: a standalone server; the shop uses neither transactions
	// nor change streams, so no replica set.
	MongoImage    = "mongo:7.0"
	PostgresImage = "postgres:17-alpine"
)

// The PostgreSQL role, password and database of the container: the same
// role and database names as the embedded cluster (internal/devinfra/embedded/postgres).
const (
	PostgresUser     = "shop"
	PostgresPassword = "shop"
	PostgresDB       = "shop"
)

// KafkaClusterID is the KRaft cluster id of the Kafka container.
const KafkaClusterID = "shopstream-test"

// Timeouts.
const (
	// DockerCheckTimeout bounds the check that a Docker engine answers.
	DockerCheckTimeout = 10 * time.Second
	// StartTimeout bounds pulling and starting one container.
	StartTimeout = 5 * time.Minute
	// readyDeadline bounds a container's wait strategy once it runs.
	readyDeadline = 2 * time.Minute
)

// Config is what the environment selects.
type Config struct {
	Backend       Kind
	KafkaImage    string
	MongoImage    string
	PostgresImage string
}

// ParseBackend reads a value of SHOP_TEST_BACKEND: "" and "embedded" are
// Embedded, "testcontainers" is Testcontainers, anything else an error that
// names the variable and the allowed values.
func ParseBackend(v string) (Kind, error) {
	switch Kind(strings.TrimSpace(v)) {
	case "", Embedded:
		return Embedded, nil
	case Testcontainers:
		return Testcontainers, nil
	}
	return "", fmt.Errorf("%s=%q: want %q or %q (or unset for %s)", EnvBackend, v, Embedded, Testcontainers, Embedded)
}

// LoadConfig reads the configuration through getenv (os.Getenv outside tests
// of this package); unset images take the pinned defaults.
func LoadConfig(getenv func(string) string) (Config, error) {
	b, err := ParseBackend(getenv(EnvBackend))
	if err != nil {
		return Config{}, err
	}
	return Config{
		Backend:       b,
		KafkaImage:    cmp.Or(strings.TrimSpace(getenv(EnvKafkaImage)), KafkaImage),
		MongoImage:    cmp.Or(strings.TrimSpace(getenv(EnvMongoImage)), MongoImage),
		PostgresImage: cmp.Or(strings.TrimSpace(getenv(EnvPostgresImage)), PostgresImage),
	}, nil
}

// Backend returns the backend SHOP_TEST_BACKEND selects.
func Backend() (Kind, error) { return ParseBackend(os.Getenv(EnvBackend)) }

// Containers reports whether SHOP_TEST_BACKEND=testcontainers; a value it
// does not know fails t.
func Containers(t testing.TB) bool {
	t.Helper()
	b, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	return b == Testcontainers
}

// KafkaOptions are the options given to the kafka module's Run on top of its
// own (listeners, KRaft roles, and a wait for the broker's RUNNING log line
// in a post-start hook; a WaitingFor strategy here would run before the
// hook starts the broker). The broker settings mirror deploy/kafka/kafka.sh,
// the CI broker: 3 partitions by default, no automatic topic creation, no
// retention limit.
func KafkaOptions() []testcontainers.ContainerCustomizer {
	return []testcontainers.ContainerCustomizer{
		tckafka.WithClusterID(KafkaClusterID),
		testcontainers.WithEnv(map[string]string{
			"KAFKA_NUM_PARTITIONS":             "3",
			"KAFKA_DEFAULT_REPLICATION_FACTOR": "1",
			"KAFKA_MIN_INSYNC_REPLICAS":        "1",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":  "false",
			"KAFKA_LOG_RETENTION_MS":           "-1",
		}),
	}
}

// MongoOptions are the options given to the mongodb module's Run: no
// credentials, no replica set, and a wait for the server's "Waiting for
// connections" log line and its port (the module's own strategy, with a
// longer deadline).
func MongoOptions() []testcontainers.ContainerCustomizer {
	return []testcontainers.ContainerCustomizer{
		testcontainers.WithWaitStrategyAndDeadline(readyDeadline,
			wait.ForLog("Waiting for connections"),
			wait.ForListeningPort("27017/tcp"),
		),
	}
}

// PostgresOptions are the options given to the postgres module's Run: the
// shop's role, password and database, and the module's basic wait (the
// "ready to accept connections" line twice, since the entrypoint restarts
// the server after initdb, then the port).
func PostgresOptions() []testcontainers.ContainerCustomizer {
	return []testcontainers.ContainerCustomizer{
		tcpostgres.WithDatabase(PostgresDB),
		tcpostgres.WithUsername(PostgresUser),
		tcpostgres.WithPassword(PostgresPassword),
		tcpostgres.BasicWaitStrategies(),
	}
}

// Kafka returns the brokers of the shared Kafka container, or skips t: when
// SHOP_TEST_BACKEND is not testcontainers, or no Docker engine answers.
func Kafka(t testing.TB) []string {
	t.Helper()
	cfg := require(t)
	kafkaC.once.Do(func() {
		kafkaC.val, kafkaC.term, kafkaC.err = startKafka(cfg.KafkaImage)
	})
	if kafkaC.err != nil {
		t.Fatalf("%s=%s: start Kafka (%s): %v", EnvBackend, Testcontainers, cfg.KafkaImage, kafkaC.err)
	}
	return strings.Split(kafkaC.val, ",")
}

// Mongo returns the URI of the shared MongoDB container, or skips t as Kafka
// does. The server is shared by every test of the binary: pick the database
// with DatabaseName.
func Mongo(t testing.TB) string {
	t.Helper()
	cfg := require(t)
	mongoC.once.Do(func() {
		mongoC.val, mongoC.term, mongoC.err = startMongo(cfg.MongoImage)
	})
	if mongoC.err != nil {
		t.Fatalf("%s=%s: start MongoDB (%s): %v", EnvBackend, Testcontainers, cfg.MongoImage, mongoC.err)
	}
	return mongoC.val
}

// Postgres returns the URL of a new, empty database named DatabaseName(t)
// on the shared PostgreSQL container, or skips t as Kafka does. Each call
// creates its own database, so tests see an empty database as they do on a
// fresh embedded cluster; the database is left behind (it goes with the
// container).
func Postgres(t testing.TB) string {
	t.Helper()
	cfg := require(t)
	pgC.once.Do(func() {
		pgC.val, pgC.term, pgC.err = startPostgres(cfg.PostgresImage)
	})
	if pgC.err != nil {
		t.Fatalf("%s=%s: start PostgreSQL (%s): %v", EnvBackend, Testcontainers, cfg.PostgresImage, pgC.err)
	}
	name := DatabaseName(t)
	u, err := createDatabase(pgC.val, name)
	if err != nil {
		t.Fatalf("%s=%s: create database %s: %v", EnvBackend, Testcontainers, name, err)
	}
	return u
}

var dbSeq atomic.Int64

var notIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// DatabaseName returns a database name unique within the test binary and
// recognisable by t's name: lower-case letters, digits and underscores, at
// most 63 bytes (PostgreSQL's limit; MongoDB allows 63 too).
func DatabaseName(t testing.TB) string {
	n := strconv.FormatInt(dbSeq.Add(1), 10)
	base := strings.Trim(notIdent.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	const maxLen = 63
	if room := maxLen - len("t_") - len(n) - 1; len(base) > room {
		base = base[:room]
	}
	return "t_" + base + "_" + n
}

// Terminate stops the containers this test binary started. Later calls of
// Kafka, Mongo and Postgres return dead endpoints (or fail, for a container
// that had not started): call it after m.Run in TestMain.
func Terminate(ctx context.Context) error {
	var errs []error
	for _, c := range []*shared{&kafkaC, &mongoC, &pgC} {
		// Waits for a start under way, and marks the slot used so that
		// nothing starts after Terminate.
		c.once.Do(func() { c.err = errors.New("terminated before first use") })
		if c.term != nil {
			errs = append(errs, c.term(ctx))
			c.term = nil
		}
	}
	return errors.Join(errs...)
}

// shared is one container of the test binary.
type shared struct {
	once sync.Once
	val  string // endpoint(s); Kafka's brokers joined by commas
	term func(context.Context) error
	err  error
}

var kafkaC, mongoC, pgC shared

// require returns the configuration when SHOP_TEST_BACKEND=testcontainers
// and a Docker engine answers; it skips t otherwise, and fails t on a
// malformed SHOP_TEST_BACKEND.
func require(t testing.TB) Config {
	t.Helper()
	cfg, err := LoadConfig(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Backend != Testcontainers {
		t.Skipf("%s is not %s: testcontainers backend test skipped", EnvBackend, Testcontainers)
	}
	if err := dockerEngine(); err != nil {
		// One line: testcontainers joins the errors of its candidates.
		t.Skipf("%s=%s: no Docker engine answers (%s): testcontainers backend test skipped", EnvBackend, Testcontainers, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return cfg
}

// docker caches, per test binary, whether a Docker engine answers.
var docker struct {
	once sync.Once
	err  error
}

// probe is checkDocker; tests of this package replace it.
var probe = checkDocker

func dockerEngine() error {
	docker.once.Do(func() { docker.err = probe(DockerCheckTimeout) })
	return docker.err
}

// checkDocker runs dockerInfo bounded by timeout. testcontainers panics
// when it finds no Docker host at all, so a panic is an answer too. A check
// that outlives timeout is abandoned to its goroutine.
func checkDocker(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	info, done := dockerInfo, make(chan error, 1)
	go func() {
		done <- func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("%v", r)
				}
			}()
			return info(ctx)
		}()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer within %v", timeout)
	}
}

// dockerInfo is testcontainers' provider health check (DockerProvider.Health:
// a Docker client found the way testcontainers finds one, then Info), with
// ctx; tests of this package replace it.
var dockerInfo = func(ctx context.Context) (err error) {
	defer func() {
		// testcontainers' Docker host discovery panics with the error of
		// its last candidate, which alone says little.
		if r := recover(); r != nil {
			host := os.Getenv("DOCKER_HOST")
			if host == "" {
				host = "unset"
			}
			err = fmt.Errorf("no Docker host found: tried DOCKER_HOST (%s), the Docker context, /var/run/docker.sock, ~/.testcontainers.properties and the rootless sockets; testcontainers: %v", host, r)
		}
	}()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	_, err = cli.Info(ctx)
	return err
}

// startKafka starts the Kafka container and returns its brokers, joined by
// commas.
func startKafka(image string) (string, func(context.Context) error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	c, err := tckafka.Run(ctx, image, KafkaOptions()...)
	term := terminator(c)
	if err != nil {
		return "", nil, errors.Join(err, term(context.WithoutCancel(ctx)))
	}
	brokers, err := c.Brokers(ctx)
	if err != nil {
		return "", nil, errors.Join(err, term(context.WithoutCancel(ctx)))
	}
	return strings.Join(brokers, ","), term, nil
}

func startMongo(image string) (string, func(context.Context) error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	c, err := tcmongo.Run(ctx, image, MongoOptions()...)
	term := terminator(c)
	if err != nil {
		return "", nil, errors.Join(err, term(context.WithoutCancel(ctx)))
	}
	uri, err := c.ConnectionString(ctx)
	if err != nil {
		return "", nil, errors.Join(err, term(context.WithoutCancel(ctx)))
	}
	return uri, term, nil
}

// startPostgres starts the PostgreSQL container and returns the URL of its
// PostgresDB database, used to create the tests' databases.
func startPostgres(image string) (string, func(context.Context) error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	c, err := tcpostgres.Run(ctx, image, PostgresOptions()...)
	term := terminator(c)
	if err != nil {
		return "", nil, errors.Join(err, term(context.WithoutCancel(ctx)))
	}
	u, err := c.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		return "", nil, errors.Join(err, term(context.WithoutCancel(ctx)))
	}
	return u, term, nil
}

// terminator returns a function that removes c, which a module's Run may
// return along with an error (TerminateContainer ignores a nil c).
func terminator(c testcontainers.Container) func(context.Context) error {
	return func(ctx context.Context) error {
		return testcontainers.TerminateContainer(c, testcontainers.StopContext(ctx))
	}
}

// createDatabase creates database name on the server of adminURL and
// returns adminURL with its database replaced by name.
func createDatabase(adminURL, name string) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// PostgresURL is the URL of a PostgreSQL database of t's own: on the shared
// container with SHOP_TEST_BACKEND=testcontainers (see Postgres), on a
// private embedded cluster (stopped when t ends) otherwise.
func PostgresURL(t testing.TB) string {
	t.Helper()
	if Containers(t) {
		return Postgres(t)
	}
	srv, err := postgres.Start(context.Background(), postgres.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return srv.URL()
}
