package kafkatest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Exclusive makes t the only test, across every test binary of this
// machine, that runs a whole shop on brokers, until t ends. A shop's
// consumer groups have fixed names (shop.processor.saga.v1, …), so two
// shops on one shared broker would split each group's partitions and
// handle each other's records against the wrong databases, and each
// shop's schema registry gives its own ids, so each would read the
// other's records as poison. `go test ./...` runs packages in parallel;
// the tests that start a shop on the real broker (cmd/shop's load tests,
// schemas/clients' foreign consumers) take this lock, an flock(2) on a
// file named after the brokers under the temporary directory, which the
// kernel releases when the holder exits, even killed.
func Exclusive(t testing.TB, brokers []string) {
	t.Helper()
	name := regexp.MustCompile(`[^A-Za-z0-9.]+`).ReplaceAllString(strings.Join(brokers, ","), "_")
	path := filepath.Join(os.TempDir(), "shopstream-kafka-"+name+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		start := time.Now()
		t.Logf("another test runs a shop on %v: waiting for it (%s)", brokers, path)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			t.Fatalf("lock %s: %v", path, err)
		}
		t.Logf("waited %v for the broker", time.Since(start).Round(time.Second))
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
