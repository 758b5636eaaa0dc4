package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/sr"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

func TestUnavailableClassifiesRealErrors(t *testing.T) {
	_, pgRefused := pgconn.Connect(context.Background(), "postgres://u@127.0.0.1:1/db?connect_timeout=2")
	mc, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100"))
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Disconnect(context.Background())
	mongoDown := mc.Database("x").RunCommand(context.Background(), map[string]any{"ping": 1}).Err()
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cases := []struct {
		name string
		err  error
		dep  string
		ok   bool
	}{
		{"pg 57P03", &pgconn.PgError{Code: "57P03"}, DepPostgres, true},
		{"pg 57P01", fmt.Errorf("tx: %w", &pgconn.PgError{Code: "57P01"}), DepPostgres, true},
		{"pg 08006", &pgconn.PgError{Code: "08006"}, DepPostgres, true},
		{"pg 53300", &pgconn.PgError{Code: "53300"}, DepPostgres, true},
		{"pg 23505 is not down", &pgconn.PgError{Code: "23505"}, "", false},
		{"pg 22P05 is not down", &pgconn.PgError{Code: "22P05"}, "", false},
		{"pg connect refused", pgRefused, DepPostgres, true},
		{"mongo server selection", mongoDown, DepMongo, true},
		{"mongo ServerSelectionError", topology.ServerSelectionError{Wrapped: context.DeadlineExceeded}, DepMongo, true},
		{"mongo network label", mongo.CommandError{Labels: []string{"NetworkError"}}, DepMongo, true},
		{"mongo disconnected", mongo.ErrClientDisconnected, DepMongo, true},
		{"mongo shutting down", mongo.CommandError{Code: 91, Name: "ShutdownInProgress"}, DepMongo, true},
		{"mongo not primary", fmt.Errorf("find: %w", mongo.CommandError{Code: 10107, Name: "NotWritablePrimary"}), DepMongo, true},
		{"mongo transient label", mongo.CommandError{Code: 112, Labels: []string{"TransientTransactionError"}}, DepMongo, true},
		// What FerretDB v1.24 answered while its PostgreSQL was stopped (the fault matrix).
		{"ferretdb storage stopped", mongo.CommandError{Code: 1, Name: "InternalError", Message: "[msg_find.go:344 handler.handleMaxTimeMSError] [collection.go:109 postgresql.(*collection).Query] FATAL: terminating connection due to administrator command (SQLSTATE 57P01)"}, DepMongo, true},
		{"ferretdb storage refused", mongo.CommandError{Code: 1, Name: "InternalError", Message: "[collection.go:109 postgresql.(*collection).Query] failed to connect to `user=shop database=ferretdb`: 127.0.0.1:35751 (127.0.0.1): dial error: dial tcp 127.0.0.1:35751: connect: connection refused"}, DepMongo, true},
		{"mongo duplicate key is not down", mongo.CommandError{Code: 11000, Name: "DuplicateKey"}, "", false},
		{"mongo other internal error is not down", mongo.CommandError{Code: 1, Name: "InternalError", Message: "nil pointer"}, "", false},
		{"kafka shards down", fmt.Errorf("list consumer groups: %w", &kadm.ShardErrors{Name: "ListGroups", AllFailed: true, Errs: []kadm.ShardError{{Err: context.DeadlineExceeded}}}), DepKafka, true},
		{"kafka shards refused", &kadm.ShardErrors{Name: "ListGroups", Errs: []kadm.ShardError{{Err: kerr.GroupAuthorizationFailed}}}, DepKafka, false},
		{"kafka retriable", kerr.NotLeaderForPartition, DepKafka, true},
		{"kafka not retriable", kerr.TopicAuthorizationFailed, DepKafka, false},
		{"registry 503", &sr.ResponseError{StatusCode: 503}, DepRegistry, true},
		{"registry 404", &sr.ResponseError{StatusCode: 404}, DepRegistry, false},
		{"registry refused", &url.Error{Op: "Get", URL: "http://r", Err: opErr}, DepRegistry, true},
		{"net.OpError", opErr, "", true},
		{"deadline", fmt.Errorf("find: %w", context.DeadlineExceeded), "", true},
		{"cancelled", context.Canceled, "", false},
		{"bug", errors.New("nil map"), "", false},
		{"nil", nil, "", false},
	}
	if pgRefused == nil || mongoDown == nil {
		t.Fatalf("no real errors: pg %v, mongo %v", pgRefused, mongoDown)
	}
	_ = time.Second
	for _, c := range cases {
		dep, ok := unavailable(c.err)
		if dep != c.dep || ok != c.ok {
			t.Errorf("%s (%v): %q, %v; want %q, %v", c.name, c.err, dep, ok, c.dep, c.ok)
		}
	}
}
