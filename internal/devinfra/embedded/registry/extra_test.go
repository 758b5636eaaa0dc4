package registry_test

import (
	"context"
	"net/url"
	"os"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"shopstream/internal/devinfra/embedded/registry"
)

// A registration the registry cannot persist is refused (500 50001) and
// leaves nothing behind; the next one, once the file is writable, works.
func TestAChangeThatCannotBePersistedIsUndone(t *testing.T) {
	file := t.TempDir() + "/registry.json"
	s := start(t, registry.Config{File: file})
	register(t, s, "p-value", record(fA))
	if err := os.Mkdir(file+".tmp", 0o755); err != nil { // the temporary file cannot be created
		t.Fatal(err)
	}
	want(t, call(t, s, "POST", "/subjects/p-value/versions", map[string]any{"schema": record(fA, fBDefault)}), 500, 50001)
	want(t, call(t, s, "PUT", "/config", map[string]string{"compatibility": "NONE"}), 500, 50001)
	var versions []int
	call(t, s, "GET", "/subjects/p-value/versions", nil).decode(t, &versions)
	if !reflect.DeepEqual(versions, []int{1}) {
		t.Errorf("versions %v after a failed persist", versions)
	}
	if r := call(t, s, "GET", "/config", nil); string(r.body) != `{"compatibilityLevel":"BACKWARD"}` {
		t.Errorf("config after a failed persist: %s", r.body)
	}
	if err := os.Remove(file + ".tmp"); err != nil {
		t.Fatal(err)
	}
	id := register(t, s, "p-value", record(fA, fBDefault))
	if id != 2 {
		t.Errorf("id %d after the failed attempt, want 2", id)
	}
}

// Subject names are path-escaped: one with a slash works.
func TestSubjectWithASlash(t *testing.T) {
	s := start(t, registry.Config{})
	subj := url.PathEscape("team/a-value")
	register(t, s, subj, record(fA))
	var subjects []string
	call(t, s, "GET", "/subjects", nil).decode(t, &subjects)
	if !reflect.DeepEqual(subjects, []string{"team/a-value"}) {
		t.Errorf("subjects %v", subjects)
	}
	want(t, call(t, s, "GET", "/subjects/"+subj+"/versions/1", nil), 200, 0)
}

// References are stored, resolved to parse the referencing schema, listed
// by referencedby, and keep the referenced version from being deleted.
func TestReferences(t *testing.T) {
	s := start(t, registry.Config{})
	money := `{"type":"record","name":"Money","namespace":"shop","fields":[{"name":"cents","type":"long"}]}`
	moneyID := register(t, s, "shop.Money", money)
	order := `{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"total","type":"shop.Money"}]}`
	refs := []map[string]any{{"name": "shop.Money", "subject": "shop.Money", "version": 1}}
	want(t, call(t, s, "POST", "/subjects/o-value/versions", map[string]any{"schema": order}), 422, 42201)
	r := call(t, s, "POST", "/subjects/o-value/versions", map[string]any{"schema": order, "references": refs})
	want(t, r, 200, 0)
	var out struct{ ID int }
	r.decode(t, &out)
	if out.ID == moneyID {
		t.Fatal("the referencing schema got the referenced one's id")
	}
	var by []int
	call(t, s, "GET", "/subjects/shop.Money/versions/1/referencedby", nil).decode(t, &by)
	if !reflect.DeepEqual(by, []int{out.ID}) {
		t.Errorf("referencedby %v, want [%d]", by, out.ID)
	}
	var got struct {
		Schema     string
		References []map[string]any
	}
	call(t, s, "GET", "/schemas/ids/"+itoa(out.ID), nil).decode(t, &got)
	if got.Schema != order || len(got.References) != 1 || got.References[0]["subject"] != "shop.Money" {
		t.Errorf("GET /schemas/ids/%d: %+v", out.ID, got)
	}
	want(t, call(t, s, "DELETE", "/subjects/shop.Money/versions/1", nil), 422, 42206)
	// A compatible change of the referencing schema is checked with the
	// reference resolved.
	order2 := `{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"total","type":"shop.Money"},{"name":"n","type":"int","default":0}]}`
	want(t, call(t, s, "POST", "/subjects/o-value/versions", map[string]any{"schema": order2, "references": refs}), 200, 0)

	// Restart: the references still resolve.
	file := t.TempDir() + "/r.json"
	s1 := start(t, registry.Config{File: file})
	register(t, s1, "shop.Money", money)
	want(t, call(t, s1, "POST", "/subjects/o-value/versions", map[string]any{"schema": order, "references": refs}), 200, 0)
	_ = s1.Stop(t.Context())
	s2 := start(t, registry.Config{File: file})
	r = call(t, s2, "POST", "/subjects/o-value", map[string]any{"schema": order, "references": refs})
	want(t, r, 200, 0)
}

// A file holding a schema this registry cannot parse (say a JSON schema
// srfake took) still loads: the schema is served by id as stored.
func TestAnUnparsableStoredSchemaStillLoads(t *testing.T) {
	file := t.TempDir() + "/registry.json"
	old := `[{"subject":"j-value","version":1,"id":4,"schema":"{\"type\":\"object\"}","schemaType":"JSON"},
	{"subject":"a-value","version":1,"id":5,"schema":"\"int\"","schemaType":"AVRO"}]`
	if err := os.WriteFile(file, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	s := start(t, registry.Config{File: file})
	r := call(t, s, "GET", "/schemas/ids/4", nil)
	if want(t, r, 200, 0); string(r.body) != `{"schema":"{\"type\":\"object\"}","schemaType":"JSON"}` {
		t.Errorf("GET /schemas/ids/4: %s", r.body)
	}
	if id := register(t, s, "a-value", `"int"`); id != 5 {
		t.Errorf("id %d, want 5", id)
	}
}

// Concurrent registrations: one id per schema, one version per
// registration, whatever the interleaving.
func TestConcurrentRegistrations(t *testing.T) {
	s := start(t, registry.Config{Compatibility: "NONE"})
	const n = 16
	ids := make([]int, n)
	shared := make([]int, n)
	cl := client(t, s)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx := context.Background()
			a, err := cl.RegisterSchema(ctx, "c"+itoa(i)+"-value", sr.Schema{Schema: record(fA)}, -1, -1)
			if err != nil {
				t.Error(err)
			}
			b, err := cl.RegisterSchema(ctx, "shared-value", sr.Schema{Schema: record(`{"name":"f` + itoa(i) + `","type":"int","default":0}`)}, -1, -1)
			if err != nil {
				t.Error(err)
			}
			ids[i], shared[i] = a, b
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("one schema, several ids: %v", ids)
		}
	}
	var versions []int
	call(t, s, "GET", "/subjects/shared-value/versions", nil).decode(t, &versions)
	if len(versions) != n || len(slices.Compact(slices.Sorted(slices.Values(shared)))) != n {
		t.Errorf("versions %v, ids %v", versions, shared)
	}
}
