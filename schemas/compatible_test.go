package schemas

import (
	"testing"

	"github.com/hamba/avro/v2"
)

// A verdict never comes from another pair whose schemas differ only in a
// default: v1 {a, b default ""} reads v3 {a}, v2 {a, b} does not, whatever
// was asked before (hamba/avro's cache is keyed by canonical fingerprints,
// which leave defaults out).
func TestCompatibleIgnoresVerdictsOfPairsThatDifferInADefault(t *testing.T) {
	parse := func(s string) avro.Schema {
		t.Helper()
		sch, err := avro.ParseWithCache(s, "", &avro.SchemaCache{})
		if err != nil {
			t.Fatal(err)
		}
		return sch
	}
	v1 := parse(`{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"string","default":""}]}`)
	v2 := parse(`{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"string"}]}`)
	v3 := parse(`{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}`)
	// On one shared avro.SchemaCompatibility (hamba/avro v2.x) the second
	// call answers nil: the first verdict is cached under the same key.
	if err := compatible(v1, v3); err != nil {
		t.Fatalf("v1 (b has a default) should read v3: %v", err)
	}
	if err := compatible(v2, v3); err == nil {
		t.Fatal("v2 (b has no default) read v3 records: a verdict of the v1 pair was reused")
	}
}
