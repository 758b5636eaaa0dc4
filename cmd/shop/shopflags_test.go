package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	"shopstream/internal/app"
	"shopstream/internal/edge/gateway"
)

func TestMaxQueriesFlag(t *testing.T) {
	parse := func(args ...string) (*shopFlags, error) {
		fs := flag.NewFlagSet("shop", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f := addShopFlags(fs)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		return f, f.check()
	}
	f, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	if got := f.apply(app.Config{}).HTTPLimits.MaxQueries; got != gateway.DefaultMaxQueries {
		t.Errorf("default --max-queries gives MaxQueries %d, want %d", got, gateway.DefaultMaxQueries)
	}
	f, err = parse("--max-queries", "2")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.apply(app.Config{}).HTTPLimits.MaxQueries; got != 2 {
		t.Errorf("--max-queries 2 gives MaxQueries %d", got)
	}
	for _, bad := range []string{"0", "-1"} {
		if _, err := parse("--max-queries", bad); err == nil || !strings.Contains(err.Error(), "--max-queries") {
			t.Errorf("--max-queries %s: error %v, want one naming --max-queries", bad, err)
		}
	}
}
