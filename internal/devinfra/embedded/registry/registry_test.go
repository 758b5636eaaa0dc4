package registry_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"shopstream/internal/devinfra/embedded/registry"
)

func client(t *testing.T, s *registry.Server) *sr.Client {
	t.Helper()
	cl, err := sr.NewClient(sr.URLs(s.URL()))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// Schema ids and versions survive a restart, including a schema shared by
// two subjects, and new registrations continue after the highest id.
func TestRestartKeepsSchemaIDs(t *testing.T) {
	ctx := context.Background()
	file := t.TempDir() + "/registry.json"
	a := sr.Schema{Type: sr.TypeAvro, Schema: `{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}`}
	a2 := sr.Schema{Type: sr.TypeAvro, Schema: `{"type":"record","name":"A","fields":[{"name":"x","type":"int"},{"name":"y","type":"int","default":0}]}`}
	b := sr.Schema{Type: sr.TypeAvro, Schema: `{"type":"record","name":"B","fields":[{"name":"z","type":"string"}]}`}

	s1, err := registry.Start(registry.Config{File: file})
	if err != nil {
		t.Fatal(err)
	}
	cl := client(t, s1)
	want := map[string]sr.SubjectSchema{}
	for _, c := range []struct {
		subject string
		schema  sr.Schema
	}{{"t-A", a}, {"t-B", b}, {"t-A", a2}, {"u-A", a}} {
		ss, err := cl.CreateSchema(ctx, c.subject, c.schema)
		if err != nil {
			t.Fatal(err)
		}
		want[c.subject+"/"+string(rune('0'+ss.Version))] = ss
	}
	if err := s1.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	s2, err := registry.Start(registry.Config{File: file})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop(ctx)
	cl = client(t, s2)
	for _, ss := range want {
		got, err := cl.SchemaByVersion(ctx, ss.Subject, ss.Version)
		if err != nil {
			t.Fatalf("%s v%d after restart: %v", ss.Subject, ss.Version, err)
		}
		if got.ID != ss.ID {
			t.Errorf("%s v%d: id %d after restart, was %d", ss.Subject, ss.Version, got.ID, ss.ID)
		}
	}
	c := sr.Schema{Type: sr.TypeAvro, Schema: `{"type":"record","name":"C","fields":[]}`}
	ss, err := cl.CreateSchema(ctx, "t-C", c)
	if err != nil {
		t.Fatal(err)
	}
	for _, old := range want {
		if ss.ID == old.ID {
			t.Fatalf("a new schema reused id %d", ss.ID)
		}
	}
}
