package gateway

import (
	"context"
	"errors"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// Dependencies named by an unavailable problem.
const (
	DepPostgres = "postgresql"
	DepMongo    = "mongodb"
	DepKafka    = "kafka"
	DepRegistry = "schema-registry"
)

// retryAfter is the Retry-After (seconds) of a 503 for a dependency down.
const retryAfter = "2"

// unavailable reports whether err means a dependency is down or did not
// answer in time (a 503 with Retry-After), not a bug (a 500), and which
// one when the error says so ("" when only the route can tell: a bare
// network error or an expired deadline). It is the one place the gateway
// classifies infrastructure errors:
//
//   - PostgreSQL: a connect error, SQLSTATE class 08 (connection
//     exception), 57P01/57P02/57P03 (shutting down, crash, cannot connect
//     now), 53300 (too many connections), a pgconn timeout;
//   - MongoDB: a network error (label NetworkError), a server selection
//     error, a wait-queue timeout, a disconnected client; a command error
//     of a server that cannot serve now (labelled RetryableWriteError or
//     TransientTransactionError, or one of mongoUnavailableCodes: shutting
//     down, no primary, host unreachable); and FerretDB's InternalError
//     reporting its PostgreSQL storage down (FerretDB v1 says so in the
//     message only: a SQLSTATE of class 08 or 57P0x, or a failed connect);
//   - Kafka: a retriable broker error, a closed client; an admin request
//     whose shards failed so (kadm.ShardErrors wraps nothing);
//   - the schema registry: a 5xx answer, or a failed HTTP call (the only
//     HTTP client on a request's path);
//   - any network error, connection refused or reset, and an expired
//     deadline (context.DeadlineExceeded).
//
// A cancelled request (the client left) is not a dependency down.
func unavailable(err error) (dep string, ok bool) {
	if err == nil || errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return "", false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch c := pgErr.Code; {
		case strings.HasPrefix(c, "08"), c == "57P01", c == "57P02", c == "57P03", c == "53300":
			return DepPostgres, true
		}
		return "", false
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) || pgconn.Timeout(err) {
		return DepPostgres, true
	}
	if mongo.IsNetworkError(err) || errors.Is(err, mongo.ErrClientDisconnected) ||
		errors.As(err, new(topology.ServerSelectionError)) || errors.As(err, new(topology.WaitQueueTimeoutError)) || mongoCannotServe(err) {
		return DepMongo, true
	}
	var shards *kadm.ShardErrors
	if errors.As(err, &shards) {
		for _, s := range shards.Errs {
			if _, down := unavailable(s.Err); down {
				return DepKafka, true
			}
		}
		return DepKafka, false
	}
	var kErr *kerr.Error
	if errors.As(err, &kErr) {
		return DepKafka, kErr.Retriable
	}
	if errors.Is(err, kgo.ErrClientClosed) {
		return DepKafka, true
	}
	var srErr *sr.ResponseError
	if errors.As(err, &srErr) {
		return DepRegistry, srErr.StatusCode >= 500
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return DepRegistry, true
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, context.DeadlineExceeded) {
		return "", true
	}
	return "", false
}

// mongoUnavailableCodes are MongoDB's error codes of a server that cannot
// serve for now: HostUnreachable, HostNotFound, NetworkTimeout,
// ShutdownInProgress, PrimarySteppedDown, NotWritablePrimary,
// InterruptedAtShutdown, NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary.
var mongoUnavailableCodes = []int32{6, 7, 89, 91, 189, 10107, 11600, 13435, 13436}

// ferretStorageDown matches FerretDB's message for its PostgreSQL storage
// being down or unreachable.
var ferretStorageDown = regexp.MustCompile(`SQLSTATE (08|57P0)|failed to connect to|connection refused`)

// mongoCannotServe reports whether err is a command error of a MongoDB
// (or FerretDB) server that cannot serve now, rather than a refusal.
func mongoCannotServe(err error) bool {
	var ce mongo.CommandError
	if !errors.As(err, &ce) {
		return false
	}
	if ce.HasErrorLabel("RetryableWriteError") || ce.HasErrorLabel("TransientTransactionError") || slices.Contains(mongoUnavailableCodes, ce.Code) {
		return true
	}
	return ce.Name == "InternalError" && ferretStorageDown.MatchString(ce.Message)
}
