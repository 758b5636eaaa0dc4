package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"shopstream/internal/platform/command"
)

// Problem is an RFC 9457 problem details body (application/problem+json).
type Problem struct {
	Type     string         `json:"type"`
	Title    string         `json:"title"`
	Status   int            `json:"status"`
	Detail   string         `json:"detail,omitempty"`
	Instance string         `json:"instance,omitempty"`
	Errors   []FieldProblem `json:"errors,omitempty"`
	// ProductID names the product of a sold_out or insufficient-stock
	// problem.
	ProductID string `json:"product_id,omitempty"`
	// Dependency names what is down in an unavailable problem
	// (postgresql, mongodb, kafka, schema-registry).
	Dependency string `json:"dependency,omitempty"`
}

// FieldProblem names a wrong field of a request.
type FieldProblem struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, status int, kind, detail string, fields ...FieldProblem) {
	sendProblem(w, Problem{
		Type: "https://shopstream.dev/problems/" + kind, Title: http.StatusText(status), Status: status,
		Detail: detail, Instance: r.URL.Path, Errors: fields,
	})
}

// isUnavailable: err means a dependency down, or the request's own
// server-side deadline expired (whatever error that caused).
func isUnavailable(r *http.Request, err error) bool {
	if _, ok := unavailable(err); ok {
		return true
	}
	var dl *deadline
	return errors.As(context.Cause(r.Context()), &dl)
}

func sendProblem(w http.ResponseWriter, p Problem) {
	status := p.Status
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeError maps a command error to its problem: 422 invalid, 404 not
// found, 409 conflict; a dependency down or the request's server-side
// deadline expired (unavailable) 503 naming it, with Retry-After; anything
// else is our fault, logged, and a 500 that says nothing of the cause.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var fe *command.FieldError
	var short *command.Shortage
	switch {
	case errors.As(err, &short):
		kind := "insufficient-stock"
		if short.SoldOut() {
			kind = "sold_out"
		}
		sendProblem(w, Problem{Type: "https://shopstream.dev/problems/" + kind, Title: http.StatusText(http.StatusConflict),
			Status: http.StatusConflict, Detail: short.Error(), Instance: r.URL.Path, ProductID: short.ProductID})
	case errors.As(err, &fe):
		writeProblem(w, r, http.StatusUnprocessableEntity, "invalid", fe.Error(), FieldProblem{Field: fe.Field, Reason: fe.Reason})
	case errors.Is(err, command.ErrInvalid):
		writeProblem(w, r, http.StatusUnprocessableEntity, "invalid", err.Error())
	case errors.Is(err, command.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, "not-found", err.Error())
	case errors.Is(err, command.ErrOverloaded):
		writeOverloaded(w, r, http.StatusTooManyRequests, retryShed, "the shop is busy; retry in a second")
	case errors.Is(err, command.ErrConflict), errors.Is(err, command.ErrVersion):
		writeProblem(w, r, http.StatusConflict, "conflict", err.Error())
	case isUnavailable(r, err):
		dep, _ := unavailable(err)
		detail := "a service the shop depends on is unavailable; retry later"
		var dl *deadline
		if errors.As(context.Cause(r.Context()), &dl) {
			if dep == "" {
				dep = dl.dep
			}
			detail = dl.Error() + "; retry later"
		}
		if dep == "" {
			dep, _ = r.Context().Value(depCtxKey{}).(string)
		}
		if dep != "" && dl == nil {
			detail = dep + " is unavailable; retry later"
		}
		log.Warn("dependency unavailable", "method", r.Method, "path", r.URL.Path, "dependency", dep, "err", err)
		w.Header().Set("Retry-After", retryAfter)
		sendProblem(w, Problem{Type: "https://shopstream.dev/problems/unavailable", Title: http.StatusText(http.StatusServiceUnavailable),
			Status: http.StatusServiceUnavailable, Detail: detail, Instance: r.URL.Path, Dependency: dep})
	case errors.Is(err, r.Context().Err()):
		writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "the request was cancelled")
	default:
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeProblem(w, r, http.StatusInternalServerError, "internal", "the shop could not handle this request; it has been logged")
	}
}
