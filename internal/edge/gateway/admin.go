package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"shopstream/internal/platform/lag"
)

// Admin is what an instance's admin listener serves, apart from the API:
// its metrics, the consumer groups' lag, the dev stack's endpoints and
// the Go profiler. None of it is meant for the public: the listener binds
// the loopback address unless told otherwise (--admin-http), and
// deployments expose it to Prometheus only.
type Admin struct {
	Metrics *prometheus.Registry
	// Lag measures every consumer group's lag (GET /lag); nil: 404.
	Lag func(ctx context.Context) ([]lag.Group, error)
	// DevEndpoints is what GET /dev/endpoints answers: the embedded
	// infrastructure of `shop dev` (nil elsewhere: 404).
	DevEndpoints any
	Checks       []Check
	// Console serves /console and below (nil: 404).
	Console http.Handler
	Logger  *slog.Logger
}

// LagResponse is the JSON of GET /lag: every consumer group of the shop
// with its lag per partition.
type LagResponse struct {
	Groups []lag.Group `json:"groups"`
}

// Handler serves GET /metrics, /lag, /dev/endpoints, /livez, /readyz and
// /debug/pprof/; anything else is a 404 problem.
func (a Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.Metrics, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, ErrorLog: slog.NewLogLogger(a.Logger.Handler(), slog.LevelWarn)}))
	mux.Handle("GET /livez", Livez())
	mux.Handle("GET /readyz", readyz(a.Checks, true)) // with each failure's error
	mux.HandleFunc("GET /lag", func(w http.ResponseWriter, r *http.Request) {
		if a.Lag == nil {
			writeProblem(w, r, http.StatusNotFound, "not-found", "this instance does not measure consumer lag (it has no Kafka)")
			return
		}
		groups, err := a.Lag(r.Context())
		if err != nil {
			writeError(w, r, a.Logger, err)
			return
		}
		if groups == nil {
			groups = []lag.Group{}
		}
		writeJSON(w, http.StatusOK, LagResponse{Groups: groups})
	})
	mux.HandleFunc("GET /dev/endpoints", func(w http.ResponseWriter, r *http.Request) {
		if a.DevEndpoints == nil {
			writeProblem(w, r, http.StatusNotFound, "not-found", "not a `shop dev` instance: its infrastructure is given by flags")
			return
		}
		writeJSON(w, http.StatusOK, a.DevEndpoints)
	})
	if a.Console != nil {
		mux.Handle("/console", a.Console)
		mux.Handle("/console/", a.Console)
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return WithProblems(mux)
}
