package eventlog_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"shopstream/internal/platform/eventlog"
)

// headerTable renders HeaderDocs as the README's Markdown table.
func headerTable() string {
	yes := map[bool]string{true: "yes", false: "no"}
	var b strings.Builder
	b.WriteString("| header | meaning | on every record | a consumer may rely on it |\n|---|---|---|---|\n")
	for _, h := range eventlog.HeaderDocs() {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", h.Name, strings.ReplaceAll(h.Meaning, "|", `\|`), yes[h.Always], yes[h.Rely])
	}
	return b.String()
}

// The README's header table is HeaderDocs, so the two cannot drift.
func TestREADMEHeaderTable(t *testing.T) {
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- headers:begin (generated from eventlog.HeaderDocs; TestREADMEHeaderTable) -->\n", "<!-- headers:end -->"
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q … %q block", begin, end)
	}
	if got, want := s[i+len(begin):j], headerTable(); got != want {
		t.Fatalf("README.md's header table differs from eventlog.HeaderDocs; put this between the markers:\n%s", want)
	}
}
