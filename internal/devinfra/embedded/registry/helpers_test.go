package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"shopstream/internal/devinfra/embedded/registry"
)

// start runs a registry for the test, persisted to a file of its own.
func start(t *testing.T, cfg registry.Config) *registry.Server {
	t.Helper()
	if cfg.File == "" {
		cfg.File = t.TempDir() + "/registry.json"
	}
	s, err := registry.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

// reply is an HTTP answer of the registry.
type reply struct {
	status int
	body   []byte
	ctype  string
}

func (r reply) decode(t *testing.T, into any) {
	t.Helper()
	if err := json.Unmarshal(r.body, into); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// code is the error_code of an error answer (0 if none).
func (r reply) code() int {
	var e struct {
		Code int `json:"error_code"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Code
}

func (r reply) message() string {
	var e struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Message
}

// call sends a request; body is marshalled unless it is a string, which is
// sent as is.
func call(t *testing.T, s *registry.Server, method, path string, body any) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, body: b, ctype: resp.Header.Get("Content-Type")}
}

// want fails unless the answer has the status and error code.
func want(t *testing.T, r reply, status, code int) {
	t.Helper()
	if r.status != status || (code != 0 && r.code() != code) {
		t.Fatalf("got %d %s, want %d error_code %d", r.status, r.body, status, code)
	}
}

// register posts an Avro schema and returns its id, failing on an error.
func register(t *testing.T, s *registry.Server, subject, schema string) int {
	t.Helper()
	r := call(t, s, "POST", "/subjects/"+subject+"/versions", map[string]any{"schema": schema})
	want(t, r, 200, 0)
	var out struct{ ID int }
	r.decode(t, &out)
	if out.ID <= 0 {
		t.Fatalf("register %s: id %d", subject, out.ID)
	}
	return out.ID
}

// record builds a record schema named R from field JSON texts.
func record(fields ...string) string {
	return `{"type":"record","name":"R","namespace":"t","fields":[` + strings.Join(fields, ",") + `]}`
}

// wantLists fails unless each GET path answers the list it maps to (an
// empty list and null are alike).
func wantLists[E any](t *testing.T, s *registry.Server, lists map[string][]E) {
	t.Helper()
	for path, wantList := range lists {
		var got []E
		call(t, s, "GET", path, nil).decode(t, &got)
		if !(len(got) == 0 && len(wantList) == 0) && !reflect.DeepEqual(got, wantList) {
			t.Errorf("GET %s: %v, want %v", path, got, wantList)
		}
	}
}
