//go:build !linux

package password

// HashNice is the nice value of the threads that compute hashes; other
// systems than Linux leave their priority as it is.
const HashNice = 0

func lowerThreadPriority() {}
