package gateway

import (
	_ "embed"
	"net/http"
	"slices"
	"strconv"
)

// openAPIDoc is the OpenAPI 3.1 document of every route the gateway serves.
// openapi_test.go keeps it true: it must validate, describe exactly
// Routes(), and name the fields the handlers' structs encode.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the gateway's OpenAPI 3.1 document (JSON), a copy the
// caller may keep or change.
func OpenAPI() []byte { return slices.Clone(openAPIDoc) }

// openAPI serves the OpenAPI document (GET /openapi.json).
func (g *Gateway) openAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(openAPIDoc)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(openAPIDoc)
	}
}
