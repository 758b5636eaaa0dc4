package gateway

import (
	"net/http"
	"strconv"
	"sync"
)

// asyncAPIDoc is Deps.AsyncAPI's document, generated once.
type asyncAPIDoc struct {
	once sync.Once
	doc  []byte
	err  error
}

// asyncAPI serves the AsyncAPI 3.0 document of the event log (GET
// /asyncapi.json), which Deps.AsyncAPI generates from the schema catalogue
// (once per gateway). Without Deps.AsyncAPI it answers 404.
func (g *Gateway) asyncAPI(w http.ResponseWriter, r *http.Request) {
	if g.d.AsyncAPI == nil {
		writeProblem(w, r, http.StatusNotFound, "not-found", "this instance does not describe its event log")
		return
	}
	a := &g.asyncDoc
	a.once.Do(func() { a.doc, a.err = g.d.AsyncAPI() })
	if a.err != nil {
		writeError(w, r, g.log, a.err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(a.doc)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.doc)
	}
}
