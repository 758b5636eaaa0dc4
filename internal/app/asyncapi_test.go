package app

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/edge/stockwatch"
	"shopstream/schemas"
	"shopstream/schemas/asyncapi"
)

// asyncDoc is the part of the AsyncAPI document the test reads.
type asyncDoc struct {
	AsyncAPI string `json:"asyncapi"`
	Channels map[string]struct {
		Address  string                       `json:"address"`
		Messages map[string]map[string]string `json:"messages"`
		Bindings struct {
			Kafka struct {
				Partitions         int32          `json:"partitions"`
				TopicConfiguration map[string]any `json:"topicConfiguration"`
			} `json:"kafka"`
		} `json:"bindings"`
	} `json:"channels"`
	Operations map[string]struct {
		Action    string              `json:"action"`
		Channel   map[string]string   `json:"channel"`
		Messages  []map[string]string `json:"messages"`
		Group     string              `json:"x-consumer-group"`
		Component string              `json:"x-shop-component"`
		Bindings  struct {
			Kafka struct {
				GroupID struct {
					Enum []string `json:"enum"`
				} `json:"groupId"`
			} `json:"kafka"`
		} `json:"bindings"`
	} `json:"operations"`
	Components struct {
		Messages map[string]struct {
			Name        string `json:"name"`
			ContentType string `json:"contentType"`
			Payload     struct {
				SchemaFormat string          `json:"schemaFormat"`
				Schema       json.RawMessage `json:"schema"`
			} `json:"payload"`
			Headers struct {
				Properties map[string]struct {
					Description string `json:"description"`
				} `json:"properties"`
				Required []string `json:"required"`
			} `json:"headers"`
			Bindings struct {
				Kafka map[string]any `json:"kafka"`
			} `json:"bindings"`
			Versions []struct {
				Version int             `json:"version"`
				Schema  json.RawMessage `json:"schema"`
			} `json:"x-shop-versions"`
		} `json:"messages"`
	} `json:"components"`
}

func loadAsyncAPI(t *testing.T) asyncDoc {
	t.Helper()
	b, err := AsyncAPI()
	if err != nil {
		t.Fatal(err)
	}
	var d asyncDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("AsyncAPI() is not JSON: %v", err)
	}
	return d
}

// headerConstants reads eventlog's Header* constants from headers.go.
func headerConstants(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../platform/eventlog/headers.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) || !strings.HasPrefix(name.Name, "Header") {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					out = append(out, v)
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no Header* constant in ../eventlog/headers.go")
	}
	return out
}

func jsonEq(a, b []byte) bool {
	var va, vb any
	return json.Unmarshal(a, &va) == nil && json.Unmarshal(b, &vb) == nil && reflect.DeepEqual(va, vb)
}

// TestAsyncAPIDescribesTheCode holds the AsyncAPI document to the code:
// every topic of schemas.Topics() is a channel, every event type of the
// catalogue a message on its topic's channel with its current schema and
// every older one, every header constant of eventlog a header of every
// message, and every consumer group a component runs a receive operation
// per topic it reads. Something added to the code and not to the document
// (or the reverse) fails here.
func TestAsyncAPIDescribesTheCode(t *testing.T) {
	d := loadAsyncAPI(t)
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	if d.AsyncAPI != "3.0.0" {
		t.Errorf("asyncapi = %q, want 3.0.0", d.AsyncAPI)
	}

	t.Run("topics", func(t *testing.T) {
		topics := schemas.Topics()
		for _, spec := range topics {
			ch, ok := d.Channels[spec.Name]
			if !ok {
				t.Errorf("topic %s has no channel", spec.Name)
				continue
			}
			k := ch.Bindings.Kafka
			if ch.Address != spec.Name || k.Partitions != spec.Partitions {
				t.Errorf("channel %s: address %q, %d partitions; want %q, %d", spec.Name, ch.Address, k.Partitions, spec.Name, spec.Partitions)
			}
			if k.TopicConfiguration["retention.ms"] != float64(-1) || !reflect.DeepEqual(k.TopicConfiguration["cleanup.policy"], []any{"delete"}) {
				t.Errorf("channel %s: topicConfiguration %v, want retention.ms -1 and cleanup.policy [delete]", spec.Name, k.TopicConfiguration)
			}
		}
		if len(d.Channels) != len(topics) {
			t.Errorf("%d channels for %d topics: %v", len(d.Channels), len(topics), slices.Sorted(maps.Keys(d.Channels)))
		}
		t.Logf("%d channels, one per topic", len(d.Channels))
	})

	t.Run("event types", func(t *testing.T) {
		headers := headerConstants(t)
		types := cat.Types()
		for _, typ := range types {
			m, ok := d.Components.Messages[typ.Name]
			if !ok {
				t.Errorf("event type %s has no message", typ.Name)
				continue
			}
			if ref := d.Channels[typ.Topic].Messages[typ.Name]["$ref"]; ref != "#/components/messages/"+typ.Name {
				t.Errorf("event type %s: channel %s carries it as %q, want a $ref to its message", typ.Name, typ.Topic, ref)
			}
			if m.Name != typ.Name || m.ContentType != "application/avro" || !strings.HasPrefix(m.Payload.SchemaFormat, "application/vnd.apache.avro") {
				t.Errorf("message %s: name %q, contentType %q, schemaFormat %q", typ.Name, m.Name, m.ContentType, m.Payload.SchemaFormat)
			}
			if !jsonEq(m.Payload.Schema, []byte(typ.Current().Schema)) {
				t.Errorf("message %s: payload is not %s", typ.Name, typ.Current().File)
			}
			versions := typ.Versions()
			if len(m.Versions) != len(versions) {
				t.Errorf("message %s: %d versions listed, the catalogue has %d", typ.Name, len(m.Versions), len(versions))
			} else {
				for i, v := range versions {
					if m.Versions[i].Version != v.Number || !jsonEq(m.Versions[i].Schema, []byte(v.Schema)) {
						t.Errorf("message %s: x-shop-versions[%d] is not %s", typ.Name, i, v.File)
					}
				}
			}
			k := m.Bindings.Kafka
			if k["schemaIdLocation"] != "payload" || k["schemaIdPayloadEncoding"] != "confluent" || k["key"] == nil {
				t.Errorf("message %s: kafka binding %v", typ.Name, k)
			}
			for _, h := range headers {
				if m.Headers.Properties[h].Description == "" {
					t.Errorf("message %s: header %s is not described", typ.Name, h)
				}
			}
			if len(m.Headers.Properties) != len(headers) {
				t.Errorf("message %s: %d headers, eventlog has %d", typ.Name, len(m.Headers.Properties), len(headers))
			}
		}
		if len(d.Components.Messages) != len(types) {
			t.Errorf("%d messages for %d event types", len(d.Components.Messages), len(types))
		}
		t.Logf("%d messages, one per event type; %d headers each", len(d.Components.Messages), len(headers))
	})

	t.Run("components", func(t *testing.T) {
		flows := Flows()
		described := map[string]bool{}
		grouped := map[string]bool{}
		for _, f := range flows {
			described[f.Component] = true
			if f.Group != "" && len(f.Reads) > 0 {
				grouped[f.Component] = true
			}
		}
		for _, c := range Components() {
			if c != OutboxRelay && !described[c] {
				t.Errorf("component %s reads and writes nothing in Flows (a new component? add its consumer to Flows)", c)
			}
		}
		for _, c := range groupsRunRuns(t) {
			if c == "stockwatch" {
				continue // the gateway's group-less reader, checked below
			}
			if !grouped[c] {
				t.Errorf("Run starts a consumer group for component %s, which Flows does not give a group and topics", c)
			}
		}
		groups := 0
		for _, f := range flows {
			for _, topic := range f.Reads {
				id := f.Component + ".receive." + topic
				if f.Group != "" {
					id = f.Group + ".receive." + topic
				}
				op, ok := d.Operations[id]
				if !ok {
					t.Errorf("%s (group %q) reads %s: no operation %s", f.Component, f.Group, topic, id)
					continue
				}
				if op.Action != "receive" || op.Channel["$ref"] != "#/channels/"+topic || op.Group != f.Group || op.Component != f.Component {
					t.Errorf("operation %s: %+v", id, op)
				}
				if f.Group != "" && !slices.Equal(op.Bindings.Kafka.GroupID.Enum, []string{f.Group}) {
					t.Errorf("operation %s: kafka groupId %v, want [%s]", id, op.Bindings.Kafka.GroupID.Enum, f.Group)
				}
				if len(op.Messages) != len(d.Channels[topic].Messages) {
					t.Errorf("operation %s: %d messages, the channel carries %d", id, len(op.Messages), len(d.Channels[topic].Messages))
				}
				groups++
			}
			for _, name := range f.Writes {
				typ, _ := cat.Type(name)
				op, ok := d.Operations[f.Component+".send."+typ.Topic]
				if !ok || op.Action != "send" {
					t.Errorf("%s writes %s: no send operation on %s", f.Component, name, typ.Topic)
					continue
				}
				want := "#/channels/" + typ.Topic + "/messages/" + name
				if !slices.ContainsFunc(op.Messages, func(m map[string]string) bool { return m["$ref"] == want }) {
					t.Errorf("%s.send.%s does not list %s", f.Component, typ.Topic, name)
				}
			}
		}
		sends := 0
		for _, op := range d.Operations {
			if op.Action == "send" {
				sends++
			}
		}
		t.Logf("%d operations: %d send, %d receive", len(d.Operations), sends, groups)
		if sends+groups != len(d.Operations) {
			t.Errorf("%d operations, but the flows make %d send and %d receive", len(d.Operations), sends, groups)
		}
	})

	t.Run("stock watch", func(t *testing.T) {
		// The one group-less reader: what Flows says is what its client
		// consumes.
		var f *asyncapi.Flow
		for _, fl := range Flows() {
			if fl.Component == Gateway && len(fl.Reads) > 0 {
				f = &fl
			}
		}
		if f == nil || f.Group != "" {
			t.Fatalf("Flows has no group-less reader for the gateway's stock watch: %+v", f)
		}
		cl, err := kgo.NewClient(append(stockwatch.New(nil, slog.New(slog.DiscardHandler)).ClientOpts(), kgo.SeedBrokers("127.0.0.1:1"))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		topics := slices.Sorted(maps.Keys(cl.OptValue(kgo.ConsumeTopics).(map[string]*regexp.Regexp)))
		if !slices.Equal(topics, f.Reads) || cl.OptValue(kgo.ConsumerGroup) != "" {
			t.Errorf("stockwatch consumes %v in group %q; Flows says %v, no group", topics, cl.OptValue(kgo.ConsumerGroup), f.Reads)
		}
	})
}

// groupsRunRuns reads the component table (components.go): the component
// of every w.consume(X, …) and w.group(X, …) call, i.e. every consumer
// group Run starts.
func groupsRunRuns(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "components.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.GenDecl:
			for _, s := range d.Specs {
				if vs, ok := s.(*ast.ValueSpec); ok && d.Tok == token.CONST {
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								consts[n.Name], _ = strconv.Unquote(lit.Value)
							}
						}
					}
				}
			}
		}
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		if fn, ok := call.Fun.(*ast.SelectorExpr); !ok || (fn.Sel.Name != "consume" && fn.Sel.Name != "group") {
			return true
		}
		switch a := call.Args[0].(type) {
		case *ast.Ident:
			if v, ok := consts[a.Name]; ok {
				out = append(out, v)
			}
		case *ast.BasicLit:
			v, _ := strconv.Unquote(a.Value)
			out = append(out, v)
		}
		return true
	})
	if len(out) == 0 {
		t.Fatal("found no w.consume(…) or w.group(…) call in the component table (components.go)")
	}
	return out
}
