// Package testenv selects the tests that need more than the default suite
// gives them. The default `go test ./...` stays fast; .ci/run sets the
// variables so that CI runs everything.
package testenv

import (
	"os"
	"strconv"
	"testing"
)

// SlowVar selects the slow tests (fault tests that build and kill the
// binary, long load checks).
const SlowVar = "SHOP_TEST_SLOW"

// Slow skips t, saying why and how to run it, unless SHOP_TEST_SLOW=1 or
// with -short.
func Slow(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: " + what)
	}
	if os.Getenv(SlowVar) != "1" {
		t.Skipf("slow test (%s): set %s=1 to run it (.ci/run does)", what, SlowVar)
	}
}

// Int reads a positive integer setting of a test or benchmark from the
// environment variable name, or def when it is unset; a malformed value
// fails tb, naming the variable.
func Int(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
