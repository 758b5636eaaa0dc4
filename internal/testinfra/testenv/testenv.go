// Package testenv selects the tests that need more than the default suite
// gives them. The default `go test ./...` stays fast; .ci/run sets the
// variables so that CI runs everything.
package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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

// Sizes reads the sizes a measurement runs at from the environment
// variable name, a comma-separated list of integers of at least 100 (e.g.
// 1000,10000,100000). When it is unset, tb is skipped with a message that
// says how to set it, e.g. 1000,10000,100000; a malformed size fails tb,
// naming the variable.
func Sizes(tb testing.TB, name, example string) []int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		tb.Skipf("set %s=%s to run this measurement", name, example)
	}
	var sizes []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 100 {
			tb.Fatalf("%s: %q is not a size of at least 100", name, f)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// OutVar names the folder where tests write the figures and artifacts a
// reader of CI's log should see (.ci/run prints every *.txt of it after the
// tests, pass or fail).
const OutVar = "SHOP_TEST_OUT"

// WriteOut writes data as name in $SHOP_TEST_OUT, or in tb's temporary
// directory when it is unset, and returns the path; a write that fails
// fails tb.
func WriteOut(tb testing.TB, name string, data []byte) string {
	tb.Helper()
	dir := os.Getenv(OutVar)
	if dir == "" {
		dir = tb.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// RequireToolsVar makes a missing tool a failure instead of a skip
// (.ci/run sets it, after installing every tool the tests use).
const RequireToolsVar = "SHOP_TEST_REQUIRE_TOOLS"

// MissingTool skips tb because a tool it needs is missing, saying which and
// how to install it, or fails it when SHOP_TEST_REQUIRE_TOOLS=1: in CI a
// tool that .ci/run was to install never turns a test into a skip.
func MissingTool(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if os.Getenv(RequireToolsVar) == "1" {
		tb.Fatalf(format+" ("+RequireToolsVar+"=1)", args...)
	}
	tb.Skipf(format+" (.ci/run installs it)", args...)
}

// WaitFor polls cond every 10 ms until it holds, failing tb after timeout
// with what it waited for.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
