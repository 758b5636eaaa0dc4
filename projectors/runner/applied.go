package runner

import "maps"

// Applied remembers, per source stream (named without dots: MongoDB keys
// cannot hold one), the highest aggregate version a document has folded.
// It is the guard that makes a replayed or redelivered event change
// nothing.
type Applied map[string]int64

// Record returns a copy of a with stream at version, and true, when the
// event is new to the document (above the stream's last version); a and
// false otherwise. a itself is never changed, so folds stay pure.
func (a Applied) Record(stream string, version int64) (Applied, bool) {
	if version <= a[stream] {
		return a, false
	}
	out := maps.Clone(a)
	if out == nil {
		out = Applied{}
	}
	out[stream] = version
	return out, true
}
