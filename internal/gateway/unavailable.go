package gateway

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
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
//     error, a wait-queue timeout, a disconnected client;
//   - Kafka: a retriable broker error, a closed client;
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
		errors.As(err, new(topology.ServerSelectionError)) || errors.As(err, new(topology.WaitQueueTimeoutError)) {
		return DepMongo, true
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
