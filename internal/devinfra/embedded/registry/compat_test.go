package registry_test

import (
	"slices"
	"strings"
	"testing"

	"shopstream/internal/devinfra/embedded/registry"
)

const (
	fA         = `{"name":"a","type":"int"}`
	fALong     = `{"name":"a","type":"long"}`
	fAString   = `{"name":"a","type":"string"}`
	fB         = `{"name":"b","type":"string"}`
	fBDefault  = `{"name":"b","type":"string","default":""}`
	fCAliasB   = `{"name":"c","type":"string","aliases":["b"]}`
	fU2        = `{"name":"u","type":["null","string"],"default":null}`
	fU3        = `{"name":"u","type":["null","string","int"],"default":null}`
	enumAB     = `{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}}`
	enumABC    = `{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}}`
	enumABDflt = `{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}}`
)

// A change from an old schema to a new one, with the verdict of each level
// worked out from the Avro spec's resolution rules: BACKWARD asks the new
// schema to read the old one's data, FORWARD the old one to read the new
// one's, FULL both.
var changes = []struct {
	name                    string
	old, next               string
	backward, forward, full bool
}{
	{"add field with default", record(fA), record(fA, fBDefault), true, true, true},
	{"add field without default", record(fA), record(fA, fB), false, true, false},
	{"remove field with default", record(fA, fBDefault), record(fA), true, true, true},
	{"remove field without default", record(fA, fB), record(fA), true, false, false},
	// The reader's alias finds the writer's field; the old schema, as
	// reader, has no alias for c.
	{"rename with alias", record(fA, fB), record(fA, fCAliasB), true, false, false},
	{"int to long", record(fA), record(fALong), true, false, false},
	{"long to int", record(fALong), record(fA), false, true, false},
	{"string to int", record(fAString), record(fA), false, false, false},
	{"enum symbol added", record(enumAB), record(enumABC), true, false, false},
	{"enum symbol removed", record(enumABC), record(enumAB), false, true, false},
	// The reader's enum default stands for symbols it lacks.
	{"enum symbol removed, reader has a default", record(enumABC), record(enumABDflt), true, true, true},
	{"union branch added", record(fU2), record(fU3), true, false, false},
	{"union branch removed", record(fU3), record(fU2), false, true, false},
	{"no change but whitespace", record(fA), " " + record(fA) + "\n", true, true, true},
}

// Every change under BACKWARD, FORWARD and FULL (and NONE, which takes
// everything), checked both through POST /compatibility/... and through a
// registration: 409 on refusal, a new id on acceptance.
func TestCompatibilityMatrix(t *testing.T) {
	s := start(t, registry.Config{})
	for _, c := range changes {
		for _, lvl := range []string{"BACKWARD", "FORWARD", "FULL", "NONE", "BACKWARD_TRANSITIVE", "FORWARD_TRANSITIVE", "FULL_TRANSITIVE"} {
			ok := map[string]bool{"BACKWARD": c.backward, "FORWARD": c.forward, "FULL": c.full, "NONE": true}[strings.TrimSuffix(lvl, "_TRANSITIVE")]
			subject := strings.NewReplacer(" ", "_", ",", "").Replace(c.name) + "-" + lvl
			t.Run(c.name+"/"+lvl, func(t *testing.T) {
				checkVerdict(t, s, subject, lvl, []string{c.old}, c.next, ok)
			})
		}
	}
}

// The _TRANSITIVE levels check against every live version, the others only
// against the latest: three-version histories where only the oldest version
// breaks with the new schema.
func TestTransitiveLevelsCheckTheWholeHistory(t *testing.T) {
	s := start(t, registry.Config{})
	for _, c := range []struct {
		level   string
		history []string
		next    string
		ok      bool
	}{
		// v3's b has no default: it reads v2 (which has b) but not v1.
		{"BACKWARD", []string{record(fA), record(fA, fBDefault)}, record(fA, fB), true},
		{"BACKWARD_TRANSITIVE", []string{record(fA), record(fA, fBDefault)}, record(fA, fB), false},
		// v3 drops b: v2 reads it (b has a default there), v1 does not.
		{"FORWARD", []string{record(fA, fB), record(fA, fBDefault)}, record(fA), true},
		{"FORWARD_TRANSITIVE", []string{record(fA, fB), record(fA, fBDefault)}, record(fA), false},
		{"FULL", []string{record(fA, fB), record(fA, fBDefault)}, record(fA), true},
		{"FULL_TRANSITIVE", []string{record(fA, fB), record(fA, fBDefault)}, record(fA), false},
	} {
		t.Run(c.level, func(t *testing.T) {
			checkVerdict(t, s, "history-"+c.level, c.level, c.history, c.next, c.ok)
		})
	}
}

// A soft-deleted version takes no part in the checks.
func TestSoftDeletedVersionsAreNotCheckedAgainst(t *testing.T) {
	s := start(t, registry.Config{Compatibility: "BACKWARD_TRANSITIVE"})
	register(t, s, "sd", record(fA))
	register(t, s, "sd", record(fA, fBDefault))
	next := map[string]any{"schema": record(fA, fB)}
	want(t, call(t, s, "POST", "/subjects/sd/versions", next), 409, 409)
	want(t, call(t, s, "DELETE", "/subjects/sd/versions/1", nil), 200, 0)
	want(t, call(t, s, "POST", "/subjects/sd/versions", next), 200, 0)
}

// checkVerdict sets the subject's level, registers the history, and checks
// the new schema's verdict three ways: against all the versions the level
// asks for, against the latest one (same verdict when the level is not
// transitive) and by registering it.
func checkVerdict(t *testing.T, s *registry.Server, subject, lvl string, history []string, next string, ok bool) {
	t.Helper()
	want(t, call(t, s, "PUT", "/config/"+subject, map[string]string{"compatibility": lvl}), 200, 0)
	var ids []int
	for _, h := range history {
		ids = append(ids, register(t, s, subject, h))
	}
	body := map[string]any{"schema": next}
	// Against all the versions the level asks for (verbose), and against
	// the latest one when that is the same verdict (not verbose).
	checks := []struct {
		path    string
		verbose bool
	}{{"/versions?verbose=true", true}}
	if !strings.HasSuffix(lvl, "_TRANSITIVE") {
		checks = append(checks, struct {
			path    string
			verbose bool
		}{"/versions/latest", false})
	}
	for _, c := range checks {
		var got struct {
			Is       bool `json:"is_compatible"`
			Messages []string
		}
		r := call(t, s, "POST", "/compatibility/subjects/"+subject+c.path, body)
		want(t, r, 200, 0)
		r.decode(t, &got)
		if got.Is != ok {
			t.Errorf("%s: POST /compatibility/subjects/%s%s: is_compatible %v, want %v (%s)", lvl, subject, c.path, got.Is, ok, r.body)
		}
		if !c.verbose && got.Messages != nil {
			t.Errorf("%s: POST .../versions/latest: %s, want no messages", lvl, r.body)
		}
		if c.verbose && !got.Is && len(got.Messages) == 0 {
			t.Errorf("verbose refusal without messages")
		}
		if c.verbose && got.Is && !strings.Contains(string(r.body), `"messages":[]`) {
			t.Errorf("verbose acceptance %s, want an empty messages list", r.body)
		}
	}
	r := call(t, s, "POST", "/subjects/"+subject+"/versions", body)
	if !ok {
		want(t, r, 409, 409)
		if m := r.message(); !strings.Contains(m, subject) || !strings.Contains(m, "reader") {
			t.Errorf("409 message %q should name the subject and hamba's reason", m)
		}
		return
	}
	want(t, r, 200, 0)
	var out struct{ ID int }
	r.decode(t, &out)
	var versions []int
	call(t, s, "GET", "/subjects/"+subject+"/versions", nil).decode(t, &versions)
	same := strings.TrimSpace(next) == history[len(history)-1]
	switch {
	case same && (out.ID != ids[len(ids)-1] || len(versions) != len(history)):
		t.Errorf("the same schema again: id %d versions %v, want id %d and no new version", out.ID, versions, ids[len(ids)-1])
	case !same && (slices.Contains(ids, out.ID) || len(versions) != len(history)+1):
		t.Errorf("accepted: id %d (history %v), versions %v: want a new id and version", out.ID, ids, versions)
	}
}
