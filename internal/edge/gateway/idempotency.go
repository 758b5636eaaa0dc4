package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"shopstream/internal/platform/command"
)

// Idempotency-Key handling: the key and a hash of the request travel in the
// request's context to the command's metadata; the command bus records and
// replays them (package idempotency).

const (
	headerIdempotencyKey = "Idempotency-Key"
	headerReplayed       = "Idempotent-Replayed"
	maxIdempotencyKey    = 255
)

type idempotencyCtxKey struct{}

// withIdempotencyKey reads the Idempotency-Key of a request that changes
// state, checks it (1 to 255 printable ASCII characters, or a 400 naming
// the header), and hashes the method, path and body, the body in canonical
// JSON so that spacing and key order do not matter. The body is given back
// to the handler unread.
func withIdempotencyKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(headerIdempotencyKey)
		if key == "" || r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		if !validKey(key) {
			writeProblem(w, r, http.StatusBadRequest, "malformed",
				fmt.Sprintf("header %s must be 1 to %d printable ASCII characters", headerIdempotencyKey, maxIdempotencyKey),
				FieldProblem{Field: headerIdempotencyKey, Reason: "must be 1 to 255 printable ASCII characters"})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(w, r, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the body must be at most %d bytes", maxBody))
			return
		}
		if err != nil && bodyTimedOut(err) {
			writeBodyTimeout(w, r)
			return
		}
		if err != nil {
			writeProblem(w, r, http.StatusBadRequest, "malformed", "could not read the body")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		k := &command.IdempotencyKey{Key: key, Hash: requestHash(r.Method, r.URL.Path, body)}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), idempotencyCtxKey{}, k)))
	})
}

func validKey(k string) bool {
	if len(k) > maxIdempotencyKey {
		return false
	}
	for i := range len(k) {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// requestHash identifies what a request asks: method, path and body. A
// top-level "password" member is left out, so that the stored hash says
// nothing of a password (a retried sign-up is the same request whatever
// its password).
func requestHash(method, path string, body []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", method, path)
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // numbers hash as written, not rounded to float64
	if err := dec.Decode(&v); err == nil {
		if m, ok := v.(map[string]any); ok {
			delete(m, "password")
		}
		canon, _ := json.Marshal(v) // map keys sorted
		body = canon
	}
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func idempotencyKey(r *http.Request) *command.IdempotencyKey {
	k, _ := r.Context().Value(idempotencyCtxKey{}).(*command.IdempotencyKey)
	return k
}
