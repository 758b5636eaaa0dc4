package eventlog

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
	"time"
)

// headerConstants reads the Header* constants of headers.go from its source,
// so that a header added there without documentation fails here.
func headerConstants(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "headers.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Header") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s is not a string literal", n.Name)
				}
				out[n.Name], _ = strconv.Unquote(lit.Value)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no Header* constant found in headers.go")
	}
	return out
}

func TestHeaderDocsCoverEveryHeader(t *testing.T) {
	docs := map[string]HeaderDoc{}
	for _, d := range HeaderDocs() {
		if _, dup := docs[d.Name]; dup {
			t.Errorf("header %s documented twice", d.Name)
		}
		if d.Meaning == "" {
			t.Errorf("header %s has no meaning", d.Name)
		}
		docs[d.Name] = d
	}
	consts := headerConstants(t)
	for name, value := range consts {
		if _, ok := docs[value]; !ok {
			t.Errorf("%s (%q) is not in HeaderDocs", name, value)
		}
	}
	if len(docs) != len(consts) {
		t.Errorf("HeaderDocs has %d headers, headers.go %d constants", len(docs), len(consts))
	}
	// Always is what Headers writes: every Always header without a
	// traceparent, and nothing undocumented with one.
	m := Metadata{EventID: "e", Type: "t", Source: "s", AggregateID: "a", AggregateVersion: 1, OccurredAt: time.Now()}
	written := map[string]bool{}
	for _, h := range m.Headers() {
		written[h.Key] = true
	}
	for _, d := range docs {
		if d.Always != written[d.Name] {
			t.Errorf("header %s: Always = %v, but Headers writes it without a traceparent: %v", d.Name, d.Always, written[d.Name])
		}
	}
	m.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, h := range m.Headers() {
		if _, ok := docs[h.Key]; !ok {
			t.Errorf("Headers writes %s, which HeaderDocs does not document", h.Key)
		}
	}
	t.Logf("%d headers documented", len(docs))
}
