package asyncapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"shopstream/internal/testinfra/testenv"
	"shopstream/schemas"
	"shopstream/schemas/asyncapi"
)

func input(t *testing.T) asyncapi.Input {
	t.Helper()
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	return asyncapi.Input{
		Catalog: cat, Topics: schemas.Topics(),
		Flows: []asyncapi.Flow{
			{Component: "writer", Writes: []string{"shop.orders.OrderPlaced", "shop.orders.OrderConfirmed", "shop.payments.PaymentRequested"}},
			{Component: "reader", Group: "shop.reader.v1", Reads: []string{schemas.TopicOrders}},
			{Component: "tail", Reads: []string{schemas.TopicStock}},
		},
		Headers: []asyncapi.Header{{Name: "ce_id", Meaning: "Event id.", Always: true, Rely: true}, {Name: "traceparent", Meaning: "Trace."}},
		Servers: []asyncapi.Server{{Name: "dev", Host: "127.0.0.1:9092", RegistryURL: "http://127.0.0.1:8081"}},
	}
}

func generic(t *testing.T, in asyncapi.Input) map[string]any {
	t.Helper()
	b, err := asyncapi.Document(in)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// at walks a generic document along keys.
func at(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for i, k := range keys {
		m, ok := v.(map[string]any)
		if !ok || m[k] == nil {
			t.Fatalf("no %s", strings.Join(keys[:i+1], "."))
		}
		v = m[k]
	}
	return v
}

func TestDocument(t *testing.T) {
	doc := generic(t, input(t))
	if doc["asyncapi"] != asyncapi.Version {
		t.Errorf("asyncapi %v", doc["asyncapi"])
	}
	if got := at(t, doc, "servers", "dev", "bindings", "kafka", "schemaRegistryUrl"); got != "http://127.0.0.1:8081" {
		t.Errorf("schemaRegistryUrl %v", got)
	}
	desc := at(t, doc, "info", "description").(string)
	for _, want := range []string{"FULL_TRANSITIVE", "magic byte 0", "TopicRecordNameStrategy", "<topic>-<record full name>", "aggregate id"} {
		if !strings.Contains(desc, want) {
			t.Errorf("info.description does not say %q", want)
		}
	}

	// The payload is the .avsc itself; every version is listed.
	m := at(t, doc, "components", "messages", "shop.catalog.ProductRegistered")
	if at(t, m, "payload", "schemaFormat") != asyncapi.AvroSchemaFormat {
		t.Errorf("schemaFormat %v", at(t, m, "payload", "schemaFormat"))
	}
	cat := input(t).Catalog
	typ, _ := cat.Type("shop.catalog.ProductRegistered")
	var avsc any
	_ = json.Unmarshal([]byte(typ.Current().Schema), &avsc)
	if got, _ := json.Marshal(at(t, m, "payload", "schema")); !bytes.Equal(got, must(json.Marshal(avsc))) {
		t.Errorf("payload schema %s, want the current .avsc", got)
	}
	if n := len(at(t, m, "x-shop-versions").([]any)); n != len(typ.Versions()) {
		t.Errorf("%d versions listed, want %d", n, len(typ.Versions()))
	}
	if at(t, m, "x-shop-subject") != "shop.catalog.products.v1-shop.catalog.ProductRegistered" {
		t.Errorf("subject %v", at(t, m, "x-shop-subject"))
	}
	if got := at(t, m, "bindings", "kafka", "schemaIdPayloadEncoding"); got != "confluent" {
		t.Errorf("schemaIdPayloadEncoding %v", got)
	}
	req := at(t, m, "headers", "required").([]any)
	if len(req) != 1 || req[0] != "ce_id" {
		t.Errorf("required headers %v, want [ce_id] (traceparent is not always there)", req)
	}
	if d := at(t, m, "headers", "properties", "traceparent", "description").(string); !strings.Contains(d, "must not") {
		t.Errorf("traceparent: %q does not say consumers must not rely on it", d)
	}

	// Sends per component and topic, receives per group and topic.
	ops := at(t, doc, "operations").(map[string]any)
	for id, want := range map[string]int{
		"writer.send.shop.orders.v1":            2,
		"writer.send.shop.payments.v1":          1,
		"shop.reader.v1.receive.shop.orders.v1": 3,
		"tail.receive.shop.inventory.stock.v1":  5,
	} {
		if n := len(at(t, ops, id, "messages").([]any)); n != want {
			t.Errorf("operation %s: %d messages, want %d", id, n, want)
		}
	}
	if len(ops) != 4 {
		t.Errorf("%d operations, want 4", len(ops))
	}
	if g := at(t, ops, "shop.reader.v1.receive.shop.orders.v1", "x-consumer-group"); g != "shop.reader.v1" {
		t.Errorf("x-consumer-group %v", g)
	}
	if _, ok := at(t, ops, "tail.receive.shop.inventory.stock.v1").(map[string]any)["x-consumer-group"]; ok {
		t.Error("a group-less reader has an x-consumer-group")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestDocumentRefusesWhatTheCatalogueDoesNotHave(t *testing.T) {
	for name, change := range map[string]func(*asyncapi.Input){
		"unknown event type": func(in *asyncapi.Input) {
			in.Flows = append(in.Flows, asyncapi.Flow{Component: "x", Writes: []string{"shop.orders.OrderLost"}})
		},
		"unknown topic": func(in *asyncapi.Input) {
			in.Flows = append(in.Flows, asyncapi.Flow{Component: "x", Group: "g", Reads: []string{"shop.nothing.v1"}})
		},
		"topic missing from the list": func(in *asyncapi.Input) { in.Topics = in.Topics[1:] },
		"one operation twice": func(in *asyncapi.Input) {
			in.Flows = append(in.Flows, asyncapi.Flow{Component: "reader", Group: "shop.reader.v1", Reads: []string{schemas.TopicOrders}})
		},
	} {
		in := input(t)
		change(&in)
		if _, err := asyncapi.Document(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestParserAcceptsDocument runs the document `shop asyncapi` writes through
// the AsyncAPI project's own parser, with its Avro schema parser (see
// validate/validate.mjs): it must report no error. Without Node or the npm
// install it skips, unless SHOP_TEST_REQUIRE_TOOLS=1 (CI) makes that a
// failure.
func TestParserAcceptsDocument(t *testing.T) {
	const install = "cd schemas/asyncapi/validate && npm ci"
	missing := func(why string) {
		t.Helper()
		testenv.MissingTool(t, "%s: run %s", why, install)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed")
	}
	if _, err := os.Stat(filepath.Join("validate", "node_modules", "@asyncapi", "parser")); err != nil {
		missing("the AsyncAPI parser is not installed")
	}
	if _, err := os.Stat(filepath.Join("validate", "node_modules", "@asyncapi", "avro-schema-parser")); err != nil {
		missing("the AsyncAPI Avro schema parser is not installed")
	}

	file := filepath.Join(t.TempDir(), "asyncapi.json")
	gorun := exec.Command("go", "run", "shopstream/cmd/shop", "asyncapi", "-o", file)
	if out, err := gorun.CombinedOutput(); err != nil {
		t.Fatalf("go run ./cmd/shop asyncapi: %v\n%s", err, out)
	}
	cmd := exec.Command(node, "validate.mjs", file)
	cmd.Dir = "validate"
	out, err := cmd.CombinedOutput()
	t.Logf("node validate.mjs:\n%s", out)
	testenv.WriteOut(t, "asyncapi.txt", append([]byte("AsyncAPI document of shop asyncapi, through the AsyncAPI project's parser (node schemas/asyncapi/validate/validate.mjs):\n"), out...))
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Fatalf("the AsyncAPI parser reports errors (exit %d)", exit.ExitCode())
	} else if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^diagnostics: 0 errors`).Match(out) {
		t.Error("validate.mjs did not report 0 errors")
	}
	counts := regexp.MustCompile(`(\d+) channels, (\d+) messages \((\d+) Avro payloads converted by the parser, (\d+) Avro schemas validated\), (\d+) operations`).FindSubmatch(out)
	if counts == nil {
		t.Fatal("validate.mjs did not print the counts")
	}
	if string(counts[2]) != string(counts[3]) {
		t.Errorf("%s messages but %s Avro payloads converted: the Avro schema parser did not parse every payload", counts[2], counts[3])
	}
	t.Logf("the parser saw %s channels, %s messages, %s operations; %s Avro schemas validated; 0 errors", counts[1], counts[2], counts[5], counts[4])
}
