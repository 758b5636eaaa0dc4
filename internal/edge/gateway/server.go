package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"
)

// Defaults of Limits.
const (
	DefaultQueryTimeout   = 3 * time.Second
	DefaultCommandTimeout = 5 * time.Second
	DefaultBodyTimeout    = 10 * time.Second
	DefaultMaxStreams     = 1000
	// MaxHeaderBytes is the request line and headers the gateway accepts:
	// more is a 431 problem (withHeaderLimit).
	MaxHeaderBytes = 64 << 10
	// hardHeaderBytes is the server's own limit, above MaxHeaderBytes so
	// that the gateway, not net/http, answers 431 up to it.
	hardHeaderBytes = 4 << 20
)

// Limits are the server-side deadlines and caps of the HTTP server.
// Zero fields take the defaults.
type Limits struct {
	// QueryTimeout bounds a GET (a read-model query); past it the
	// request answers 503 naming the read model.
	QueryTimeout time.Duration
	// CommandTimeout bounds a command (POST, DELETE); past it 503.
	CommandTimeout time.Duration
	// BodyTimeout bounds reading a whole request, headers and body
	// (http.Server.ReadTimeout): a slower body is cut off with 408.
	BodyTimeout time.Duration
	// MaxStreams caps the concurrent event streams; more answer 503.
	MaxStreams int
	// MaxQueries caps the queries (read-model GETs) run at once; one more
	// waits at most QueryQueueWait for a slot, then answers 503 with
	// Retry-After (see Load shedding).
	MaxQueries int
	// AuthRate is how many sign-ups and log-ins one address may make per
	// second (bursts of AuthBurst); more answer 429 with Retry-After.
	AuthRate  float64
	AuthBurst int
	// WriteRate is how many commands one caller (a customer, a staff key)
	// may send per second (bursts of WriteBurst); more answer 429.
	WriteRate  float64
	WriteBurst int
}

// Default abuse limits.
const (
	DefaultAuthRate   = 10
	DefaultAuthBurst  = 50
	DefaultWriteRate  = 20
	DefaultWriteBurst = 50
)

func (l Limits) withDefaults() Limits {
	if l.QueryTimeout <= 0 {
		l.QueryTimeout = DefaultQueryTimeout
	}
	if l.CommandTimeout <= 0 {
		l.CommandTimeout = DefaultCommandTimeout
	}
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	if l.MaxStreams <= 0 {
		l.MaxStreams = DefaultMaxStreams
	}
	if l.MaxQueries <= 0 {
		l.MaxQueries = DefaultMaxQueries
	}
	if l.AuthRate <= 0 {
		l.AuthRate = DefaultAuthRate
	}
	if l.AuthBurst <= 0 {
		l.AuthBurst = DefaultAuthBurst
	}
	if l.WriteRate <= 0 {
		l.WriteRate = DefaultWriteRate
	}
	if l.WriteBurst <= 0 {
		l.WriteBurst = DefaultWriteBurst
	}
	return l
}

// NewServer is the HTTP server of h under l: a read-header timeout, a
// read timeout of l.BodyTimeout (slow bodies cut off), a write timeout
// longer than a body plus the longest deadline (event streams lift it
// for themselves: package sse), an idle timeout, and
// the header limit of withHeaderLimit.
func NewServer(h http.Handler, l Limits) *http.Server {
	l = l.withDefaults()
	return &http.Server{
		Handler:           withHeaderLimit(MaxHeaderBytes, h),
		ReadHeaderTimeout: min(5*time.Second, l.BodyTimeout),
		ReadTimeout:       l.BodyTimeout,
		WriteTimeout:      l.BodyTimeout + max(l.QueryTimeout, l.CommandTimeout) + 5*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    hardHeaderBytes,
	}
}

// withHeaderLimit answers 431 problem+json to a request whose request
// line and headers exceed limit bytes. The server's MaxHeaderBytes is set
// far higher (hardHeaderBytes, 4 MiB) so that this middleware, not
// net/http, answers: beyond that hard limit net/http itself still
// answers a bare "431 Request Header Fields Too Large" in text/plain, as
// it does a malformed request line or header (400 text/plain) and an
// unsupported HTTP version (505), all before any handler runs.
func withHeaderLimit(limit int, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
		for k, vs := range r.Header {
			for _, v := range vs {
				n += len(k) + len(v) + 4
			}
		}
		if n > limit {
			w.Header().Set("Connection", "close")
			writeProblem(w, r, http.StatusRequestHeaderFieldsTooLarge, "header-too-large",
				fmt.Sprintf("the request line and headers must be at most %d bytes", limit))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// WithProblems serves mux, with every answer of the mux itself (404 for
// no route, 405 with Allow for a method it does not route, the 301/307
// redirects to a cleaned path) rewritten as problem+json, keeping status
// and headers such as Allow and Location.
func WithProblems(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" && !isRedirect(h) {
			mux.ServeHTTP(w, r)
			return
		}
		muxProblem(w, r, h)
	})
}

var redirectType = reflect.TypeOf(http.RedirectHandler("/", http.StatusTemporaryRedirect))

// isRedirect tells the mux's redirect handler (whose pattern is that of
// the redirect's target) from a route's.
func isRedirect(h http.Handler) bool { return reflect.TypeOf(h) == redirectType }

// muxProblem runs h, an answer of the mux, into a buffer and writes its
// status and headers with a problem body.
func muxProblem(w http.ResponseWriter, r *http.Request, h http.Handler) {
	rec := &bufferedResponse{header: http.Header{}}
	h.ServeHTTP(rec, r)
	status := rec.code
	if status == 0 {
		status = http.StatusNotFound
	}
	for k, vs := range rec.header {
		switch k {
		case "Content-Type", "Content-Length", "X-Content-Type-Options":
			continue
		}
		w.Header()[k] = vs
	}
	kind, detail := "no-route", "no route for "+r.Method+" "+r.URL.Path
	switch {
	case status == http.StatusMethodNotAllowed:
		kind, detail = "method-not-allowed", r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+rec.header.Get("Allow")
	case status >= 300 && status < 400:
		kind, detail = "moved", "this resource is at "+rec.header.Get("Location")
	case status != http.StatusNotFound:
		kind, detail = "malformed", strings.TrimSpace(rec.body.String())
	}
	writeProblem(w, r, status, kind, detail)
}

// bufferedResponse records an answer of the mux.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}

// deadline is the cause of a request's context when its server-side
// deadline expires: which dependency the route waits on, and how long.
type deadline struct {
	dep   string
	after time.Duration
}

func (d *deadline) Error() string {
	return fmt.Sprintf("%s did not answer within %s", d.dep, d.after)
}

type depCtxKey struct{}

// withDeadline bounds r by d, naming dep as what it waits on.
func withDeadline(r *http.Request, d time.Duration, dep string) (*http.Request, context.CancelFunc) {
	ctx := context.WithValue(r.Context(), depCtxKey{}, dep)
	ctx, cancel := context.WithTimeoutCause(ctx, d, &deadline{dep: dep, after: d})
	return r.WithContext(ctx), cancel
}

// routeDependency is what a route waits on, for its deadline and for
// errors that do not name their dependency.
func routeDependency(pattern string) string {
	method, _, _ := strings.Cut(pattern, " ")
	switch {
	case pattern == "GET /lag":
		return DepKafka
	case method == http.MethodGet || method == http.MethodHead:
		return DepMongo
	default:
		return DepPostgres
	}
}
