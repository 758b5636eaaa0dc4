// Package testenv selects the tests that need more than the default suite
// gives them. The default `go test ./...` stays fast; .ci/run sets the
// variables so that CI runs everything.
package testenv

import (
	"os"
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
