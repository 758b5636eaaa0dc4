package registry_test

import (
	"context"
	"errors"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"shopstream/internal/devinfra/embedded/registry"
)

// Each of Confluent's error codes, where Confluent answers it.
func TestErrorCodes(t *testing.T) {
	s := start(t, registry.Config{})
	id := register(t, s, "s-value", record(fA))
	for _, c := range []struct {
		name         string
		method, path string
		body         any
		status, code int
	}{
		{"unknown subject", "GET", "/subjects/nope/versions", nil, 404, 40401},
		{"unknown subject version", "GET", "/subjects/nope/versions/1", nil, 404, 40401},
		{"lookup in unknown subject", "POST", "/subjects/nope", map[string]any{"schema": record(fA)}, 404, 40401},
		{"compatibility with a version of an unknown subject", "POST", "/compatibility/subjects/nope/versions/latest", map[string]any{"schema": record(fA)}, 404, 40401},
		{"unknown version", "GET", "/subjects/s-value/versions/9", nil, 404, 40402},
		{"compatibility with an unknown version", "POST", "/compatibility/subjects/s-value/versions/9", map[string]any{"schema": record(fA)}, 404, 40402},
		{"unknown id", "GET", "/schemas/ids/999", nil, 404, 40403},
		{"unknown id, raw", "GET", "/schemas/ids/999/schema", nil, 404, 40403},
		{"lookup of a schema not in the subject", "POST", "/subjects/s-value", map[string]any{"schema": record(fALong)}, 404, 40403},
		{"incompatible", "POST", "/subjects/s-value/versions", map[string]any{"schema": record(fAString)}, 409, 409},
		{"body not JSON", "POST", "/subjects/s-value/versions", "not json", 422, 42201},
		{"schema not JSON", "POST", "/subjects/s-value/versions", map[string]any{"schema": "string"}, 422, 42201},
		{"schema not Avro", "POST", "/subjects/s-value/versions", map[string]any{"schema": `{"type":"record","name":"R"}`}, 422, 42201},
		{"empty schema", "POST", "/subjects/s-value/versions", map[string]any{}, 422, 42201},
		{"JSON schema type", "POST", "/subjects/j-value/versions", map[string]any{"schema": `{"type":"object"}`, "schemaType": "JSON"}, 422, 42201},
		{"PROTOBUF schema type", "POST", "/subjects/p-value/versions", map[string]any{"schema": `syntax = "proto3";`, "schemaType": "PROTOBUF"}, 422, 42201},
		{"compatibility check of a body that is not JSON", "POST", "/compatibility/subjects/s-value/versions/latest", "{not json", 422, 42201},
		{"compatibility check of an invalid schema", "POST", "/compatibility/subjects/s-value/versions", map[string]any{"schema": `{"type":"nope"}`}, 422, 42201},
		{"invalid version", "GET", "/subjects/s-value/versions/abc", nil, 422, 42202},
		{"version zero", "GET", "/subjects/s-value/versions/0", nil, 422, 42202},
		{"invalid level", "PUT", "/config", map[string]string{"compatibility": "SIDEWAYS"}, 422, 42203},
		{"invalid subject level", "PUT", "/config/s-value", map[string]string{"compatibility": ""}, 422, 42203},
		{"hard delete of a live subject", "DELETE", "/subjects/s-value?permanent=true", nil, 404, 40405},
		{"hard delete of a live version", "DELETE", "/subjects/s-value/versions/1?permanent=true", nil, 404, 40407},
		{"no subject level", "GET", "/config/s-value", nil, 404, 40408},
		{"no subject mode", "GET", "/mode/s-value", nil, 404, 40409},
		{"invalid mode", "PUT", "/mode", map[string]string{"mode": "SOMETIMES"}, 422, 42204},
		{"explicit id outside import mode", "POST", "/subjects/s-value/versions", map[string]any{"schema": record(fA, fBDefault), "id": 100}, 422, 42205},
		{"unknown route", "GET", "/nothing/here", nil, 404, 404},
		{"wrong method", "PUT", "/subjects/s-value/versions", nil, 405, 405},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := call(t, s, c.method, c.path, c.body)
			want(t, r, c.status, c.code)
			if r.ctype != "application/vnd.schemaregistry.v1+json" || r.message() == "" {
				t.Errorf("content type %q, message %q", r.ctype, r.message())
			}
		})
	}
	if m := call(t, s, "POST", "/subjects/j-value/versions", map[string]any{"schema": `{}`, "schemaType": "JSON"}).message(); !strings.Contains(m, "only AVRO") {
		t.Errorf("JSON schema refused with %q, want it to say only AVRO is supported", m)
	}
	// None of the refusals changed anything.
	var subjects []string
	call(t, s, "GET", "/subjects", nil).decode(t, &subjects)
	var versions []int
	call(t, s, "GET", "/subjects/s-value/versions", nil).decode(t, &versions)
	if !reflect.DeepEqual(subjects, []string{"s-value"}) || !reflect.DeepEqual(versions, []int{1}) {
		t.Errorf("after refusals: subjects %v, versions %v", subjects, versions)
	}
	var ss struct{ ID int }
	call(t, s, "GET", "/subjects/s-value/versions/latest", nil).decode(t, &ss)
	if ss.ID != id {
		t.Errorf("latest id %d, want %d", ss.ID, id)
	}
}

// A stock Confluent deserializer asks GET /schemas/ids/{id}?subject=<topic>-value
// (TopicNameStrategy) while our producers register under
// <topic>-<record full name>: the id is found all the same.
func TestSchemaByIDIgnoresTheSubjectParameter(t *testing.T) {
	s := start(t, registry.Config{})
	sch := `{"type":"record","name":"OrderPlaced","namespace":"shop.orders","fields":[{"name":"order_id","type":"string"}]}`
	id := register(t, s, "shop.orders.v1-shop.orders.OrderPlaced", sch)
	for _, q := range []string{"", "?subject=shop.orders.v1-value", "?subject=nope", "?subject=shop.orders.v1-value&format=default"} {
		r := call(t, s, "GET", "/schemas/ids/"+itoa(id)+q, nil)
		want(t, r, 200, 0)
		var got map[string]any
		r.decode(t, &got)
		if !reflect.DeepEqual(got, map[string]any{"schema": sch}) {
			t.Errorf("GET /schemas/ids/%d%s: %s, want only the schema (no schemaType for AVRO)", id, q, r.body)
		}
	}
	r := call(t, s, "GET", "/schemas/ids/"+itoa(id)+"/schema?subject=shop.orders.v1-value", nil)
	if want(t, r, 200, 0); string(r.body) != sch {
		t.Errorf("raw schema %s", r.body)
	}
	var usages []map[string]any
	call(t, s, "GET", "/schemas/ids/"+itoa(id)+"/versions", nil).decode(t, &usages)
	if !reflect.DeepEqual(usages, []map[string]any{{"subject": "shop.orders.v1-shop.orders.OrderPlaced", "version": 1.0}}) {
		t.Errorf("versions of id %d: %v", id, usages)
	}
	var subjects, types []string
	call(t, s, "GET", "/schemas/ids/"+itoa(id)+"/subjects", nil).decode(t, &subjects)
	call(t, s, "GET", "/schemas/types", nil).decode(t, &types)
	if !reflect.DeepEqual(subjects, []string{"shop.orders.v1-shop.orders.OrderPlaced"}) || !reflect.DeepEqual(types, []string{"AVRO"}) {
		t.Errorf("subjects %v, types %v", subjects, types)
	}
}

// Ids are global per schema; the same schema again in a subject is the same
// version; equality is of the parsed form, where doc and defaults count.
func TestIDsAreGlobalPerSchema(t *testing.T) {
	s := start(t, registry.Config{Compatibility: "NONE"})
	a := record(fA)
	id := register(t, s, "x-value", a)
	if got := register(t, s, "y-value", a); got != id {
		t.Errorf("same schema in another subject: id %d, want %d", got, id)
	}
	spaced := `{ "fields" : [ {"type":"int", "name":"a"} ], "name":"R", "namespace":"t", "type":"record" }`
	if got := register(t, s, "x-value", spaced); got != id {
		t.Errorf("same schema respelled: id %d, want %d", got, id)
	}
	if got := register(t, s, "x-value", `{"type":"record","name":"t.R","fields":[{"name":"a","type":"int"}]}`); got != id {
		t.Errorf("same schema with a full name: id %d, want %d", got, id)
	}
	var versions []int
	call(t, s, "GET", "/subjects/x-value/versions", nil).decode(t, &versions)
	if !reflect.DeepEqual(versions, []int{1}) {
		t.Errorf("versions %v, want [1]", versions)
	}
	doc := `{"type":"record","name":"R","namespace":"t","doc":"d","fields":[{"name":"a","type":"int"}]}`
	if got := register(t, s, "x-value", doc); got == id {
		t.Errorf("a schema with a doc got the id of the one without")
	}
	var look struct {
		Subject string
		ID      int
		Version int
		Schema  string
	}
	r := call(t, s, "POST", "/subjects/x-value", map[string]any{"schema": spaced})
	want(t, r, 200, 0)
	r.decode(t, &look)
	if look.Subject != "x-value" || look.ID != id || look.Version != 1 || look.Schema != a {
		t.Errorf("lookup: %+v", look)
	}
}

// Soft deletes hide versions from listings and checks but keep their ids
// resolvable; hard deletes need a soft one first; re-registering a
// soft-deleted schema revives it as a new version with its id.
func TestSoftAndHardDelete(t *testing.T) {
	s := start(t, registry.Config{})
	id1 := register(t, s, "d-value", record(fA))
	id2 := register(t, s, "d-value", record(fA, fBDefault))

	var deleted []int
	r := call(t, s, "DELETE", "/subjects/d-value/versions/1", nil)
	want(t, r, 200, 0)
	if string(r.body) != "1" {
		t.Errorf("DELETE version 1: %s", r.body)
	}
	want(t, call(t, s, "DELETE", "/subjects/d-value/versions/1", nil), 404, 40406)
	want(t, call(t, s, "GET", "/subjects/d-value/versions/1", nil), 404, 40402)
	want(t, call(t, s, "GET", "/subjects/d-value/versions/1?deleted=true", nil), 200, 0)
	want(t, call(t, s, "GET", "/schemas/ids/"+itoa(id1), nil), 200, 0)
	wantLists(t, s, map[string][]int{
		"/subjects/d-value/versions":              {2},
		"/subjects/d-value/versions?deleted=true": {1, 2},
	})

	// The whole subject.
	r = call(t, s, "DELETE", "/subjects/d-value", nil)
	want(t, r, 200, 0)
	r.decode(t, &deleted)
	if !reflect.DeepEqual(deleted, []int{2}) {
		t.Errorf("soft delete of the subject returned %v, want [2]", deleted)
	}
	want(t, call(t, s, "DELETE", "/subjects/d-value", nil), 404, 40404)
	want(t, call(t, s, "GET", "/subjects/d-value/versions", nil), 404, 40401)
	want(t, call(t, s, "GET", "/subjects/d-value/versions/latest", nil), 404, 40401)
	want(t, call(t, s, "GET", "/schemas/ids/"+itoa(id2), nil), 200, 0)
	wantLists(t, s, map[string][]string{
		"/subjects":              {}, // none live after a soft delete
		"/subjects?deleted=true": {"d-value"},
	})

	// Reviving v2's schema: a new version (3), v2's id.
	if got := register(t, s, "d-value", record(fA, fBDefault)); got != id2 {
		t.Errorf("revived schema: id %d, want %d", got, id2)
	}
	wantLists(t, s, map[string][]int{"/subjects/d-value/versions": {3}})

	// Hard delete of version 1 (soft-deleted), then of the rest.
	want(t, call(t, s, "DELETE", "/subjects/d-value/versions/1?permanent=true", nil), 200, 0)
	want(t, call(t, s, "GET", "/subjects/d-value/versions/1?deleted=true", nil), 404, 40402)
	want(t, call(t, s, "GET", "/schemas/ids/"+itoa(id1), nil), 404, 40403)
	want(t, call(t, s, "DELETE", "/subjects/d-value?permanent=true", nil), 404, 40405)
	want(t, call(t, s, "DELETE", "/subjects/d-value", nil), 200, 0)
	r = call(t, s, "DELETE", "/subjects/d-value?permanent=true", nil)
	want(t, r, 200, 0)
	r.decode(t, &deleted)
	if !reflect.DeepEqual(deleted, []int{2, 3}) {
		t.Errorf("hard delete returned %v, want [2 3]", deleted)
	}
	want(t, call(t, s, "GET", "/subjects/d-value/versions?deleted=true", nil), 404, 40401)
	want(t, call(t, s, "GET", "/schemas/ids/"+itoa(id2), nil), 404, 40403)
	// An id is never given to another schema.
	if got := register(t, s, "e-value", record(fAString)); got == id1 || got == id2 {
		t.Errorf("a new schema got the hard-deleted id %d", got)
	}
}

// Global and per-subject levels: GET/PUT/DELETE, defaultToGlobal, and the
// configured default.
func TestConfig(t *testing.T) {
	s := start(t, registry.Config{Compatibility: "full"})
	get := func(path string) string {
		t.Helper()
		var out struct {
			Level string `json:"compatibilityLevel"`
		}
		r := call(t, s, "GET", path, nil)
		want(t, r, 200, 0)
		r.decode(t, &out)
		return out.Level
	}
	if l := get("/config"); l != "FULL" {
		t.Errorf("global level %s, want the configured FULL", l)
	}
	r := call(t, s, "PUT", "/config", map[string]string{"compatibility": "FULL_TRANSITIVE"})
	if want(t, r, 200, 0); string(r.body) != `{"compatibility":"FULL_TRANSITIVE"}` {
		t.Errorf("PUT /config: %s", r.body)
	}
	if l := get("/config"); l != "FULL_TRANSITIVE" {
		t.Errorf("global level %s", l)
	}
	want(t, call(t, s, "GET", "/config/c-value", nil), 404, 40408)
	if l := get("/config/c-value?defaultToGlobal=true"); l != "FULL_TRANSITIVE" {
		t.Errorf("defaultToGlobal: %s", l)
	}
	want(t, call(t, s, "PUT", "/config/c-value", map[string]string{"compatibility": "NONE"}), 200, 0)
	if l := get("/config/c-value"); l != "NONE" {
		t.Errorf("subject level %s", l)
	}
	// NONE takes anything.
	register(t, s, "c-value", record(fA))
	register(t, s, "c-value", record(fAString))
	r = call(t, s, "DELETE", "/config/c-value", nil)
	if want(t, r, 200, 0); string(r.body) != `{"compatibilityLevel":"NONE"}` {
		t.Errorf("DELETE /config/c-value: %s", r.body)
	}
	want(t, call(t, s, "GET", "/config/c-value", nil), 404, 40408)
	// Back to the global FULL_TRANSITIVE (v1's schema again would just
	// answer v1's id, unchecked).
	want(t, call(t, s, "POST", "/subjects/c-value/versions", map[string]any{"schema": record(fALong)}), 409, 409)
	want(t, call(t, s, "DELETE", "/config", nil), 200, 0)
	if l := get("/config"); l != "FULL" {
		t.Errorf("global level after DELETE /config: %s, want the configured FULL", l)
	}
	if _, err := registry.Start(registry.Config{Compatibility: "SIDEWAYS"}); err == nil {
		t.Error("an invalid Config.Compatibility started")
	}
}

// READONLY refuses registrations and deletes; IMPORT takes explicit ids and
// versions without compatibility checks.
func TestMode(t *testing.T) {
	s := start(t, registry.Config{})
	register(t, s, "m-value", record(fA))
	r := call(t, s, "GET", "/mode", nil)
	if want(t, r, 200, 0); string(r.body) != `{"mode":"READWRITE"}` {
		t.Errorf("GET /mode: %s", r.body)
	}
	want(t, call(t, s, "PUT", "/mode/m-value", map[string]string{"mode": "READONLY"}), 200, 0)
	r = call(t, s, "POST", "/subjects/m-value/versions", map[string]any{"schema": record(fA, fBDefault)})
	want(t, r, 422, 42205)
	want(t, call(t, s, "DELETE", "/subjects/m-value", nil), 422, 42205)
	register(t, s, "other-value", record(fA)) // other subjects are not read-only
	want(t, call(t, s, "DELETE", "/mode/m-value", nil), 200, 0)
	register(t, s, "m-value", record(fA, fBDefault))

	want(t, call(t, s, "PUT", "/mode", map[string]string{"mode": "READONLY"}), 200, 0)
	want(t, call(t, s, "POST", "/subjects/new-value/versions", map[string]any{"schema": record(fA)}), 422, 42205)
	want(t, call(t, s, "PUT", "/mode", map[string]string{"mode": "READWRITE"}), 200, 0)

	// IMPORT: on a non-empty subject only with force; then ids and
	// versions are the caller's and nothing is checked.
	want(t, call(t, s, "PUT", "/mode/m-value", map[string]string{"mode": "IMPORT"}), 422, 42205)
	want(t, call(t, s, "PUT", "/mode/imp-value", map[string]string{"mode": "IMPORT"}), 200, 0)
	r = call(t, s, "POST", "/subjects/imp-value/versions", map[string]any{"schema": record(fA), "id": 500, "version": 7})
	want(t, r, 200, 0)
	if string(r.body) != `{"id":500}` {
		t.Errorf("import: %s", r.body)
	}
	r = call(t, s, "POST", "/subjects/imp-value/versions", map[string]any{"schema": record(fAString), "id": 501, "version": 8})
	want(t, r, 200, 0)
	want(t, call(t, s, "POST", "/subjects/imp-value/versions", map[string]any{"schema": record(fALong), "id": 500, "version": 9}), 422, 42207)
	var ss struct{ ID, Version int }
	call(t, s, "GET", "/subjects/imp-value/versions/7", nil).decode(t, &ss)
	if ss.ID != 500 || ss.Version != 7 {
		t.Errorf("imported version: %+v", ss)
	}
	want(t, call(t, s, "DELETE", "/mode/imp-value", nil), 200, 0)
	if id := register(t, s, "after-value", record(fALong)); id <= 501 {
		t.Errorf("a new id after an import of 501: %d", id)
	}
}

// Ids, versions, soft deletes, levels and modes survive a restart on the
// same file.
func TestRestartKeepsEverything(t *testing.T) {
	file := t.TempDir() + "/registry.json"
	s1, err := registry.Start(registry.Config{File: file})
	if err != nil {
		t.Fatal(err)
	}
	id1 := register(t, s1, "r-value", record(fA))
	id2 := register(t, s1, "r-value", record(fA, fBDefault))
	want(t, call(t, s1, "DELETE", "/subjects/r-value/versions/1", nil), 200, 0)
	want(t, call(t, s1, "PUT", "/config", map[string]string{"compatibility": "FORWARD"}), 200, 0)
	want(t, call(t, s1, "PUT", "/config/r-value", map[string]string{"compatibility": "FULL_TRANSITIVE"}), 200, 0)
	want(t, call(t, s1, "PUT", "/mode/ro-value", map[string]string{"mode": "READONLY"}), 200, 0)
	if err := s1.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(file)

	s := start(t, registry.Config{File: file})
	var ss struct{ ID, Version int }
	call(t, s, "GET", "/subjects/r-value/versions/latest", nil).decode(t, &ss)
	if ss.ID != id2 || ss.Version != 2 {
		t.Errorf("latest after restart: %+v, want id %d version 2", ss, id2)
	}
	want(t, call(t, s, "GET", "/subjects/r-value/versions/1", nil), 404, 40402)
	call(t, s, "GET", "/subjects/r-value/versions/1?deleted=true", nil).decode(t, &ss)
	if ss.ID != id1 {
		t.Errorf("soft-deleted version 1 after restart: %+v", ss)
	}
	if r := call(t, s, "GET", "/config", nil); string(r.body) != `{"compatibilityLevel":"FORWARD"}` {
		t.Errorf("global level after restart: %s", r.body)
	}
	if r := call(t, s, "GET", "/config/r-value", nil); string(r.body) != `{"compatibilityLevel":"FULL_TRANSITIVE"}` {
		t.Errorf("subject level after restart: %s", r.body)
	}
	want(t, call(t, s, "POST", "/subjects/ro-value/versions", map[string]any{"schema": record(fA)}), 422, 42205)
	// A read changes nothing in the file; the next id follows the highest.
	after, _ := os.ReadFile(file)
	if string(after) != string(before) {
		t.Error("the file changed without a change")
	}
	if id := register(t, s, "n-value", record(fAString)); id <= id2 {
		t.Errorf("new id %d after restart, not above %d", id, id2)
	}
}

// The file of the srfake-based registry loads with its ids, and new
// registrations continue after the highest.
func TestOldFileFormatLoads(t *testing.T) {
	file := t.TempDir() + "/registry.json"
	old := `[
  {"subject": "shop.orders.v1-shop.orders.OrderPlaced", "version": 1, "id": 3, "schema": "{\"type\":\"record\",\"name\":\"OrderPlaced\",\"namespace\":\"shop.orders\",\"fields\":[{\"name\":\"id\",\"type\":\"string\"}]}", "schemaType": "AVRO"},
  {"subject": "shop.orders.v1-shop.orders.OrderPlaced", "version": 2, "id": 7, "schema": "{\"type\":\"record\",\"name\":\"OrderPlaced\",\"namespace\":\"shop.orders\",\"fields\":[{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"n\",\"type\":\"int\",\"default\":0}]}", "schemaType": "AVRO"},
  {"subject": "other-shop.orders.OrderPlaced", "version": 1, "id": 3, "schema": "{\"type\":\"record\",\"name\":\"OrderPlaced\",\"namespace\":\"shop.orders\",\"fields\":[{\"name\":\"id\",\"type\":\"string\"}]}", "schemaType": "AVRO"},
  {"subject": "x-value", "version": 1, "id": 5, "schema": "\"string\"", "schemaType": "AVRO"}
]`
	if err := os.WriteFile(file, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	s := start(t, registry.Config{File: file})
	for _, c := range []struct {
		subject string
		version int
		id      int
	}{{"shop.orders.v1-shop.orders.OrderPlaced", 1, 3}, {"shop.orders.v1-shop.orders.OrderPlaced", 2, 7}, {"other-shop.orders.OrderPlaced", 1, 3}, {"x-value", 1, 5}} {
		var ss struct{ ID, Version int }
		r := call(t, s, "GET", "/subjects/"+c.subject+"/versions/"+itoa(c.version), nil)
		want(t, r, 200, 0)
		r.decode(t, &ss)
		if ss.ID != c.id {
			t.Errorf("%s v%d: id %d, want %d", c.subject, c.version, ss.ID, c.id)
		}
	}
	// The same schema again: its old id, no new version.
	if id := register(t, s, "other-shop.orders.OrderPlaced", `{"type":"record","name":"OrderPlaced","namespace":"shop.orders","fields":[{"name":"id","type":"string"}]}`); id != 3 {
		t.Errorf("re-registered: id %d, want 3", id)
	}
	if id := register(t, s, "y-value", `"long"`); id != 8 {
		t.Errorf("new schema: id %d, want 8", id)
	}
	// Now the file is in the new format, and loads again.
	b, _ := os.ReadFile(file)
	if !strings.HasPrefix(string(b), "{") {
		t.Errorf("file not rewritten in format 2: %.40s", b)
	}
	_ = s.Stop(context.Background())
	s2 := start(t, registry.Config{File: file})
	want(t, call(t, s2, "GET", "/schemas/ids/8", nil), 200, 0)
	want(t, call(t, s2, "GET", "/schemas/ids/3", nil), 200, 0)
}

// franz-go's sr client, which our producers and tools use, works against
// the registry: CreateSchema, SchemaByID, LookupSchema, CheckCompatibility,
// SetCompatibility, Compatibility, SetMode, DeleteSubject, SchemaTextByID.
func TestFranzGoClient(t *testing.T) {
	ctx := context.Background()
	s := start(t, registry.Config{})
	cl := client(t, s)
	v1 := sr.Schema{Type: sr.TypeAvro, Schema: record(fA)}
	ss, err := cl.CreateSchema(ctx, "f-value", v1)
	if err != nil {
		t.Fatal(err)
	}
	if ss.Subject != "f-value" || ss.Version != 1 || ss.ID <= 0 || ss.Schema.Schema != v1.Schema {
		t.Errorf("CreateSchema: %+v", ss)
	}
	got, err := cl.SchemaByID(sr.WithParams(ctx, sr.Subject("f-value-other")), ss.ID)
	if err != nil || got.Schema != v1.Schema {
		t.Errorf("SchemaByID: %+v %v", got, err)
	}
	text, err := cl.SchemaTextByID(ctx, ss.ID)
	if err != nil || text != v1.Schema {
		t.Errorf("SchemaTextByID: %q %v", text, err)
	}
	look, err := cl.LookupSchema(ctx, "f-value", v1)
	if err != nil || look.ID != ss.ID || look.Version != 1 {
		t.Errorf("LookupSchema: %+v %v", look, err)
	}
	types, err := cl.SupportedTypes(ctx)
	if err != nil || !reflect.DeepEqual(types, []sr.SchemaType{sr.TypeAvro}) {
		t.Errorf("SupportedTypes: %v %v", types, err)
	}

	bad := sr.Schema{Type: sr.TypeAvro, Schema: record(fA, fB)}
	res, err := cl.CheckCompatibility(sr.WithParams(ctx, sr.Verbose), "f-value", -1, bad)
	if err != nil || res.Is || len(res.Messages) == 0 {
		t.Errorf("CheckCompatibility of an incompatible schema: %+v %v", res, err)
	}
	good := sr.Schema{Type: sr.TypeAvro, Schema: record(fA, fBDefault)}
	if res, err := cl.CheckCompatibility(ctx, "f-value", -2, good); err != nil || !res.Is {
		t.Errorf("CheckCompatibility of a compatible schema: %+v %v", res, err)
	}
	_, err = cl.CreateSchema(ctx, "f-value", bad)
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 409 || re.ErrorCode != 409 {
		t.Errorf("CreateSchema of an incompatible schema: %v", err)
	}

	for _, r := range cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatNone}, "f-value") {
		if r.Err != nil || r.Level != sr.CompatNone {
			t.Errorf("SetCompatibility: %+v", r)
		}
	}
	for _, r := range cl.Compatibility(ctx, "f-value", sr.GlobalSubject) {
		if wantLevel := map[string]sr.CompatibilityLevel{"f-value": sr.CompatNone, "": sr.CompatBackward}[r.Subject]; r.Err != nil || r.Level != wantLevel {
			t.Errorf("Compatibility(%q): %+v, want %v", r.Subject, r, wantLevel)
		}
	}
	ss2, err := cl.CreateSchema(ctx, "f-value", bad)
	if err != nil || ss2.Version != 2 {
		t.Errorf("CreateSchema under NONE: %+v %v", ss2, err)
	}
	for _, r := range cl.ResetCompatibility(ctx, "f-value") {
		if r.Err != nil {
			t.Errorf("ResetCompatibility: %v", r.Err)
		}
	}

	for _, r := range cl.SetMode(ctx, sr.ModeReadOnly, "f-value") {
		if r.Err != nil || r.Mode != sr.ModeReadOnly {
			t.Errorf("SetMode: %+v", r)
		}
	}
	if _, err := cl.CreateSchema(ctx, "f-value", good); !errors.As(err, &re) || re.ErrorCode != 42205 {
		t.Errorf("CreateSchema in READONLY: %v", err)
	}
	cl.ResetMode(ctx, "f-value")

	versions, err := cl.DeleteSubject(ctx, "f-value", sr.SoftDelete)
	if err != nil || !reflect.DeepEqual(versions, []int{1, 2}) {
		t.Errorf("DeleteSubject soft: %v %v", versions, err)
	}
	if _, err := cl.SchemaByID(ctx, ss.ID); err != nil {
		t.Errorf("SchemaByID of a soft-deleted version: %v", err)
	}
	versions, err = cl.DeleteSubject(ctx, "f-value", sr.HardDelete)
	if err != nil || !reflect.DeepEqual(versions, []int{1, 2}) {
		t.Errorf("DeleteSubject hard: %v %v", versions, err)
	}
	subjects, err := cl.Subjects(ctx)
	if err != nil || slices.Contains(subjects, "f-value") {
		t.Errorf("Subjects after a hard delete: %v %v", subjects, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
