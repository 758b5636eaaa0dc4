package password

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// nice reads a thread's nice value from its stat file in /proc.
func nice(t *testing.T, stat string) (int, bool) {
	t.Helper()
	b, err := os.ReadFile(stat)
	if err != nil {
		return 0, false // the thread ended
	}
	// The fields after the command's closing parenthesis begin with the
	// 3rd of the line, the state; nice is the 19th.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	n, err := strconv.Atoi(fields[19-3])
	if err != nil {
		t.Fatalf("%s: %v", stat, err)
	}
	return n, true
}

// While a hash is computed, a thread of the process runs at HashNice; the
// caller's thread keeps its priority.
func TestHashesRunOnLowPriorityThreadsOfTheirOwn(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, _ := nice(t, "/proc/thread-self/stat")
	if before == HashNice {
		t.Skipf("the test's own thread already runs at nice %d", HashNice)
	}

	done := make(chan error, 1)
	go func() {
		_, err := Hash(ctx, "correct horse battery", Params{Memory: 64 * 1024, Time: 4, Threads: 1}) // a few hundred ms
		done <- err
	}()
	found := false
	for !found {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			t.Fatalf("no thread of the process ran at nice %d while the hash was computed", HashNice)
		default:
		}
		tasks, _ := filepath.Glob("/proc/self/task/*/stat")
		for _, stat := range tasks {
			if n, ok := nice(t, stat); ok && n == HashNice {
				found = true
			}
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if after, _ := nice(t, "/proc/thread-self/stat"); after != before {
		t.Fatalf("the caller's thread went from nice %d to %d", before, after)
	}
}
