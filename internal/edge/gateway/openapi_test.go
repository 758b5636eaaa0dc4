package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"shopstream/internal/edge/auth"
	"shopstream/producers/carts"
	"shopstream/producers/orders"
)

// loadOpenAPI loads and validates the embedded document: every $ref
// resolves, the document is valid OpenAPI 3.1 (schemas checked as JSON
// Schema 2020-12), and every example matches its schema.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableMultiError()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document:\n%v", err)
	}
	return doc
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	if !json.Valid(OpenAPI()) {
		t.Fatal("openapi.json is not JSON")
	}
	doc := loadOpenAPI(t)
	if !doc.IsOpenAPI31OrLater() {
		t.Errorf("openapi = %q, want 3.1.x (Validate would not check the schemas as JSON Schema 2020-12)", doc.OpenAPI)
	}
}

// TestOpenAPIDescribesExactlyTheRoutes holds the document to the routes
// the gateway registers: a route added without documentation, or
// documentation left behind by a removed route, fails here.
func TestOpenAPIDescribesExactlyTheRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	served := map[string]bool{}
	for _, pattern := range New(Deps{Auth: testAuth, Logger: slog.New(slog.DiscardHandler)}).Routes() {
		op, err := operationOf(pattern)
		if err != nil {
			t.Errorf("route %q: %v", pattern, err)
			continue
		}
		served[op] = true
	}
	var missing, extra []string
	for op := range served {
		if !documented[op] {
			missing = append(missing, op)
		}
	}
	for op := range documented {
		if !served[op] {
			extra = append(extra, op)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes the gateway serves that openapi.json does not document:\n\t%s", strings.Join(missing, "\n\t"))
	}
	if len(extra) > 0 {
		t.Errorf("operations openapi.json documents that the gateway does not serve:\n\t%s", strings.Join(extra, "\n\t"))
	}
}

var (
	restWildcard = regexp.MustCompile(`\{([^{}]*)\.\.\.\}`)
	muxMethods   = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodTrace, http.MethodConnect}
)

// operationOf turns a ServeMux pattern ("METHOD /path/{param}") into the
// "METHOD /path/{param}" of an OpenAPI operation: {name...} becomes
// {name} and {$} goes. Patterns OpenAPI cannot say (any method, one host)
// are errors.
func operationOf(pattern string) (string, error) {
	method, rest, ok := strings.Cut(pattern, " ")
	if !ok || !slices.Contains(muxMethods, method) {
		return "", fmt.Errorf("no method: OpenAPI cannot describe a route for any method")
	}
	rest = strings.TrimLeft(rest, " \t")
	slash := strings.Index(rest, "/")
	switch {
	case slash < 0:
		return "", fmt.Errorf("no path")
	case slash > 0:
		return "", fmt.Errorf("host %q: OpenAPI paths have no host", rest[:slash])
	}
	path := strings.ReplaceAll(rest, "{$}", "")
	path = restWildcard.ReplaceAllString(path, "{$1}")
	return method + " " + path, nil
}

func TestOperationOf(t *testing.T) {
	for pattern, want := range map[string]string{
		"GET /healthz":                  "GET /healthz",
		"GET  /products/{id}":           "GET /products/{id}",
		"DELETE /carts/{c}/items/{p}":   "DELETE /carts/{c}/items/{p}",
		"GET /files/{path...}":          "GET /files/{path}",
		"GET /{$}":                      "GET /",
		"POST /orders/{id}/lines/{$}":   "POST /orders/{id}/lines/",
		"/everything":                   "",
		"GET example.org/products/{id}": "",
		"FETCH /products/{id}":          "",
	} {
		got, err := operationOf(pattern)
		if want == "" {
			if err == nil {
				t.Errorf("operationOf(%q) = %q, want an error", pattern, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("operationOf(%q) = %q, %v; want %q", pattern, got, err, want)
		}
	}
}

// TestOpenAPIServed checks that GET /openapi.json answers the embedded
// document, through the gateway's routing and through the handler itself.
func TestOpenAPIServed(t *testing.T) {
	g := New(Deps{Auth: testAuth, Logger: slog.New(slog.DiscardHandler)})
	const corr = "0195f3c1-2a4b-7c6d-8e9f-0a1b2c3d4e5f"
	check := func(t *testing.T, rec *httptest.ResponseRecorder) {
		t.Helper()
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d, want 200; body: %.300s", rec.Code, rec.Body.String())
		}
		if mt, _, err := mime.ParseMediaType(rec.Header().Get("Content-Type")); err != nil || mt != "application/json" {
			t.Errorf("Content-Type %q, want application/json", rec.Header().Get("Content-Type"))
		}
		if !bytes.Equal(rec.Body.Bytes(), OpenAPI()) {
			t.Errorf("body (%d bytes) is not the embedded openapi.json (%d bytes)", rec.Body.Len(), len(OpenAPI()))
		}
		if got := rec.Header().Get("X-Correlation-ID"); got != corr {
			t.Errorf("X-Correlation-ID %q, want the request's %q echoed", got, corr)
		}
	}
	request := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/openapi.json", nil)
		r.Header.Set("X-Correlation-ID", corr)
		return r
	}
	t.Run("handler", func(t *testing.T) {
		rec := httptest.NewRecorder()
		g.openAPI(rec, request())
		rec.Header().Set("X-Correlation-ID", corr) // ServeHTTP's part, checked by "route"
		check(t, rec)
	})
	t.Run("route", func(t *testing.T) {
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, request())
		if rec.Code == http.StatusNotFound {
			t.Fatalf(`GET /openapi.json: 404; New must register g.handle("GET /openapi.json", g.openAPI)`)
		}
		check(t, rec)
	})
}

func TestOpenAPIReturnsACopy(t *testing.T) {
	b := OpenAPI()
	b[0] = 'x'
	if OpenAPI()[0] == 'x' {
		t.Fatal("OpenAPI() hands out the embedded document itself; a caller could change what is served")
	}
}

// TestOpenAPICrossCutting checks what every operation of the contract
// shares, so that a route added to the document does not forget it.
func TestOpenAPICrossCutting(t *testing.T) {
	doc := loadOpenAPI(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			params := map[string]bool{}
			for _, p := range slices.Concat(item.Parameters, op.Parameters) {
				params[p.Value.In+":"+http.CanonicalHeaderKey(p.Value.Name)] = true
			}
			for _, h := range []string{"X-Correlation-ID", "traceparent"} {
				if !params["header:"+http.CanonicalHeaderKey(h)] {
					t.Errorf("%s: no %s header parameter", where, h)
				}
			}
			want := []string{"429"}
			if strings.Contains(path, "{") {
				want = append(want, "404")
			}
			// A log-in is a POST that changes nothing: no command, no
			// idempotency key to record or replay.
			command := method != http.MethodGet && where != "POST /auth/token"
			if command {
				// withIdempotencyKey checks the key of every request that
				// is not a GET or HEAD.
				want = append(want, "400", "422")
				if !params["header:Idempotency-Key"] {
					t.Errorf("%s: no Idempotency-Key header parameter", where)
				}
			}
			if method == http.MethodPost {
				want = append(want, "413", "415")
				if rb := op.RequestBody; rb == nil || !rb.Value.Required || rb.Value.Content["application/json"] == nil {
					t.Errorf("%s: no required application/json request body", where)
				}
			}
			for _, code := range want {
				if op.Responses.Value(code) == nil {
					t.Errorf("%s: no %s response", where, code)
				}
			}
			for code, resp := range op.Responses.Map() {
				r := resp.Value
				switch {
				case where+" "+code == "GET /healthz 503":
					// The health report, not a problem.
				case code >= "400":
					if len(r.Content) != 1 || r.Content["application/problem+json"] == nil {
						t.Errorf("%s %s: error responses are application/problem+json only", where, code)
					}
				case code < "300" && command:
					if r.Headers["Idempotent-Replayed"] == nil {
						t.Errorf("%s %s: no Idempotent-Replayed header", where, code)
					}
				}
				if code == "429" && r.Headers["Retry-After"] == nil {
					t.Errorf("%s 429: no Retry-After header", where)
				}
				if r.Headers["X-Correlation-ID"] == nil {
					t.Errorf("%s %s: no X-Correlation-ID header", where, code)
				}
			}
		}
	}
}

// TestOpenAPIComponentsAreUsed keeps the components section free of
// leftovers: each component is referenced at least once.
func TestOpenAPIComponentsAreUsed(t *testing.T) {
	var raw map[string]any
	if err := json.Unmarshal(OpenAPI(), &raw); err != nil {
		t.Fatal(err)
	}
	refs := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				refs[ref] = true
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(raw)
	// Security schemes are named, not referenced, by the operations'
	// security requirements.
	for _, item := range raw["paths"].(map[string]any) {
		for _, op := range item.(map[string]any) {
			o, _ := op.(map[string]any)
			reqs, _ := o["security"].([]any)
			for _, req := range reqs {
				for name := range req.(map[string]any) {
					refs["#/components/securitySchemes/"+name] = true
				}
			}
		}
	}
	components, _ := raw["components"].(map[string]any)
	for section, entries := range components {
		for name := range entries.(map[string]any) {
			if ref := "#/components/" + section + "/" + name; !refs[ref] {
				t.Errorf("%s is never referenced", ref)
			}
		}
	}
}

// productMediaType is GET /products/{id}'s 200 application/json.
func productMediaType(t *testing.T, doc *openapi3.T) *openapi3.MediaType {
	t.Helper()
	item := doc.Paths.Value("/products/{id}")
	if item == nil || item.Get == nil {
		t.Fatal("openapi.json has no GET /products/{id}")
	}
	resp := item.Get.Responses.Status(http.StatusOK)
	if resp == nil || resp.Value.Content["application/json"] == nil {
		t.Fatal("GET /products/{id} has no 200 application/json response")
	}
	return resp.Value.Content["application/json"]
}

// TestOpenAPIProductMatchesGo holds GET /products/{id}'s schema and
// examples to productResponse, the struct the handler encodes: a field
// renamed, added or removed on either side fails here.
func TestOpenAPIProductMatchesGo(t *testing.T) {
	doc := loadOpenAPI(t)
	mt := productMediaType(t, doc)

	t.Run("schema", func(t *testing.T) {
		checkStruct(t, "Product", reflect.TypeFor[productResponse](), mt.Schema.Value, true)
	})

	t.Run("examples", func(t *testing.T) {
		examples := map[string]any{}
		if mt.Example != nil {
			examples["example"] = mt.Example
		}
		for name, ex := range mt.Examples {
			examples[name] = ex.Value.Value
		}
		if len(examples) == 0 {
			t.Fatal("GET /products/{id} 200 has no example to check")
		}
		for name, ex := range examples {
			// An example must decode into productResponse with no member
			// left over, and encode back to itself: no missing member, no
			// misspelt one (encoding/json matches names case-insensitively).
			want, _ := json.Marshal(ex)
			dec := json.NewDecoder(bytes.NewReader(want))
			dec.DisallowUnknownFields()
			var p productResponse
			if err := dec.Decode(&p); err != nil {
				t.Errorf("example %q does not decode into productResponse: %v", name, err)
				continue
			}
			got, _ := json.Marshal(p)
			if !jsonEqual(t, got, want) {
				t.Errorf("example %q is not what productResponse encodes:\nexample: %s\nencoded: %s", name, want, got)
			}
		}
	})

	t.Run("encoded", func(t *testing.T) {
		// What the handler writes validates against the schema, with
		// and without the optional parts.
		avg := 4.5
		for name, p := range map[string]productResponse{
			"new": {ID: "0195f3c2-7b1e-7a3c-9d2e-4f5a6b7c8d9e", Title: "Cup", PriceCents: 1250, Currency: "EUR",
				Stock: 3, Reviews: make([]reviewResponse, 0)},
			"reviewed": {ID: "0195f3c2-7b1e-7a3c-9d2e-4f5a6b7c8d9e", Title: "Cup", PriceCents: 1250, Currency: "EUR",
				Photo: "https://img.example.org/cup.jpg", SoldOut: true, Rating: ratingResponse{Average: &avg, Count: 2},
				Reviews: []reviewResponse{{CustomerID: "0195f3c1-2a4b-7c6d-8e9f-0a1b2c3d4e5f", Rating: 5, At: time.Date(2026, 3, 2, 9, 15, 0, 123, time.UTC)}}},
		} {
			b, _ := json.Marshal(p)
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			if err := mt.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.EnableFormatValidation()); err != nil {
				t.Errorf("%s: %s does not match the Product schema: %v", name, b, err)
			}
		}
	})
}

// TestOpenAPIStructsMatchGo holds the other schemas that have a Go struct
// to that struct's JSON names.
func TestOpenAPIStructsMatchGo(t *testing.T) {
	doc := loadOpenAPI(t)
	for _, c := range []struct {
		schema   string
		typ      reflect.Type
		response bool
	}{
		{"Problem", reflect.TypeFor[Problem](), true},
		{"SignUpRequest", reflect.TypeFor[signUpRequest](), false},
		{"LoginRequest", reflect.TypeFor[loginRequest](), false},
		{"Token", reflect.TypeFor[auth.Token](), true},
		{"RegisterProductRequest", reflect.TypeFor[registerProductRequest](), false},
		{"RestockRequest", reflect.TypeFor[restockRequest](), false},
		{"AddReviewRequest", reflect.TypeFor[addReviewRequest](), false},
		{"AddCartItemRequest", reflect.TypeFor[cartItemRequest](), false},
		{"PlaceOrderRequest", reflect.TypeFor[placeOrderRequest](), false},
		{"Cart", reflect.TypeFor[carts.View](), true},
		{"OrderPlaced", reflect.TypeFor[orders.Placed](), true},
		{"Order", reflect.TypeFor[orderResponse](), true},
		{"ProductPage", reflect.TypeFor[productPage](), true},
		{"CustomerOrders", reflect.TypeFor[customerOrders](), true},
	} {
		t.Run(c.schema, func(t *testing.T) {
			s := doc.Components.Schemas[c.schema]
			if s == nil {
				t.Fatalf("no schema %s in components", c.schema)
			}
			checkStruct(t, c.schema, c.typ, s.Value, c.response)
		})
	}
}

// checkStruct compares an object schema with the JSON encoding of a struct
// type, recursively: the same member names, the same JSON types, and, for
// a response, required exactly when the member is always encoded (no
// omitempty). A request schema must refuse unknown members, as decodeJSON
// does.
func checkStruct(t *testing.T, where string, typ reflect.Type, s *openapi3.Schema, response bool) {
	t.Helper()
	if s == nil || !s.Type.Includes("object") {
		t.Errorf("%s: schema is not an object for %s", where, typ)
		return
	}
	if !response && (s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has) {
		t.Errorf("%s: request schema must say additionalProperties: false (the gateway refuses unknown members)", where)
	}
	fields := map[string]bool{}
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		if f.Anonymous {
			t.Errorf("%s: embedded field %s: checkStruct does not follow embedding", where, f.Name)
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		omitempty := slices.Contains(strings.Split(opts, ","), "omitempty")
		fields[name] = true
		at := where + "." + name
		prop := s.Properties[name]
		if prop == nil || prop.Value == nil {
			t.Errorf("%s: %s.%s is encoded as %q, which the schema does not have", where, typ, f.Name, name)
			continue
		}
		if response && slices.Contains(s.Required, name) == omitempty {
			t.Errorf("%s: required is %v, but omitempty is %v", at, !omitempty, omitempty)
		}
		checkType(t, at, f.Type, prop.Value, response, !omitempty)
	}
	for name := range s.Properties {
		if !fields[name] {
			t.Errorf("%s: the schema has %q, which %s does not encode", where, name, typ)
		}
	}
}

var timeType = reflect.TypeFor[time.Time]()

// checkType compares one member's schema with its Go type. A pointer in a
// response is null when nil, unless omitempty leaves it out (always is
// false); in a request it only tells a missing member from a zero one.
func checkType(t *testing.T, at string, typ reflect.Type, s *openapi3.Schema, response, always bool) {
	t.Helper()
	nullable := false
	if typ.Kind() == reflect.Pointer {
		nullable = response && always
		typ = typ.Elem()
	}
	var want string
	switch {
	case typ == timeType:
		want = "string"
	case typ.Kind() == reflect.String:
		want = "string"
	case typ.Kind() == reflect.Bool:
		want = "boolean"
	case typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Uint64:
		want = "integer"
	case typ.Kind() == reflect.Float32 || typ.Kind() == reflect.Float64:
		want = "number"
	case typ.Kind() == reflect.Slice || typ.Kind() == reflect.Array:
		want = "array"
	case typ.Kind() == reflect.Struct || typ.Kind() == reflect.Map:
		want = "object"
	default:
		t.Errorf("%s: checkType does not know Go type %s", at, typ)
		return
	}
	if !s.Type.Includes(want) {
		t.Errorf("%s: schema type %v, but Go type %s encodes a JSON %s", at, s.Type.Slice(), typ, want)
	}
	if response && s.Type.IncludesNull() != nullable {
		t.Errorf("%s: schema allows null = %v, but Go type %s encodes null = %v", at, s.Type.IncludesNull(), typ, nullable)
	}
	switch {
	case typ == timeType:
		if s.Format != "date-time" {
			t.Errorf("%s: a time.Time is a date-time string, schema format is %q", at, s.Format)
		}
	case typ.Kind() == reflect.Struct:
		checkStruct(t, at, typ, s, response)
	case typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Struct && typ.Elem() != timeType:
		if s.Items == nil {
			t.Errorf("%s: array schema has no items", at)
			return
		}
		checkStruct(t, at+"[]", typ.Elem(), s.Items.Value, response)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(va, vb)
}
