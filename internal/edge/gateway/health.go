package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// CheckTimeout bounds each readiness check: a dependency that has not
// answered by then counts as down. It is below the 3 s timeout the
// Kubernetes readiness probes allow a whole answer.
const CheckTimeout = 2 * time.Second

// Livez answers GET /livez, the liveness probe: 200 {"status":"ok"} while
// the process serves HTTP. It checks no dependency, on purpose: restarting
// the process cures no outage of PostgreSQL, MongoDB, Kafka or the
// registry, and restarting every pod because of one would turn an outage
// into a crash loop. A component that fails stops the whole process
// (app.Run), so a process that answers is running all its components.
func Livez() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

// Readyz answers GET /readyz, the readiness probe, from checks: exactly
// what the components of this instance need (app.Run picks them), run
// concurrently, each within CheckTimeout.
//
//   - every check passes: 200 {"status":"ok","checks":{name:"ok",…}};
//   - one fails: 503 application/problem+json of type
//     problems/unavailable with Retry-After, its dependency the first
//     failing check (in the order of checks), its detail naming every
//     failing one, and the same "checks" member, each failure
//     "unavailable". The errors themselves (a driver's, naming user,
//     database and address) are the admin listener's only (Admin).
func Readyz(checks []Check) http.HandlerFunc { return readyz(checks, false) }

// readyz is Readyz, with each failure's error when detailed.
func readyz(checks []Check, detailed bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		results := runChecks(r.Context(), checks)
		status := make(map[string]string, len(checks))
		var failing []string
		for i, c := range checks {
			if err := results[i]; err != nil {
				status[c.Name] = "unavailable"
				if detailed {
					status[c.Name] = err.Error()
				}
				failing = append(failing, c.Name)
				continue
			}
			status[c.Name] = "ok"
		}
		w.Header().Set("Cache-Control", "no-store")
		if len(failing) == 0 {
			writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "checks": status})
			return
		}
		w.Header().Set("Retry-After", retryAfter)
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(readinessProblem{
			Problem: Problem{Type: "https://shopstream.dev/problems/unavailable", Title: http.StatusText(http.StatusServiceUnavailable),
				Status: http.StatusServiceUnavailable, Detail: "not ready: " + strings.Join(failing, ", ") + " unavailable; retry later",
				Instance: r.URL.Path, Dependency: failing[0]},
			Checks: status,
		})
	}
}

// readinessProblem is the 503 of Readyz: an unavailable problem with the
// checks' results as an extension member.
type readinessProblem struct {
	Problem
	Checks map[string]string `json:"checks"`
}

// runChecks runs every check at once, each within CheckTimeout, and
// returns their errors in the order of checks.
func runChecks(ctx context.Context, checks []Check) []error {
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
			defer cancel()
			errs[i] = c.Check(cctx)
		})
	}
	wg.Wait()
	return errs
}
