package password

import "golang.org/x/sys/unix"

// HashNice is the nice value of the threads that compute hashes: a
// thread at nice 10 gets about a tenth of a core's time against one at
// the default 0, so a hash still ends under full load, in about ten times
// its time.
const HashNice = 10

// lowerThreadPriority sets the calling thread's nice value to HashNice
// (best effort: a refusal leaves it as it was).
func lowerThreadPriority() {
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), HashNice)
}
