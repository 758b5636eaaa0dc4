package layout_test

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "shopstream/"

// layers, from the bottom; each lists the layers it may import besides its
// own. The first prefix that matches a package decides its layer.
var layers = []struct {
	name, prefix string
	may          []string
}{
	{"schemas", "schemas", nil},
	{"platform", "internal/platform/", []string{"schemas"}},
	{"producers", "producers/", []string{"schemas", "platform"}},
	{"projectors", "projectors/", []string{"schemas", "platform"}},
	{"processors", "processors/", []string{"schemas", "platform", "producers"}},
	{"edge", "internal/edge/", []string{"schemas", "platform", "producers", "projectors", "processors"}},
	{"app", "internal/app", []string{"schemas", "platform", "producers", "projectors", "processors", "edge"}},
	{"devinfra", "internal/devinfra/", []string{"schemas", "platform", "producers", "projectors", "processors", "edge", "app"}},
	{"testinfra", "internal/testinfra/", []string{"schemas", "platform", "producers", "projectors", "processors", "edge", "app", "devinfra"}},
	{"tools", "internal/tools/", []string{"schemas", "platform", "producers", "projectors", "processors", "edge", "app", "devinfra"}},
	{"layout", "internal/layout", nil},
	{"deploy", "deploy", nil},
	{"cmd", "cmd/", []string{"schemas", "platform", "producers", "projectors", "processors", "edge", "app", "devinfra", "testinfra", "tools"}},
}

func layerOf(path string) (string, []string, bool) {
	rel := strings.TrimPrefix(path, module)
	for _, l := range layers {
		if rel == strings.TrimSuffix(l.prefix, "/") || strings.HasPrefix(rel, l.prefix) {
			return l.name, l.may, true
		}
	}
	return "", nil, false
}

type pkg struct {
	ImportPath, Name string
	Imports          []string
}

// packages lists the module's packages with their non-test imports.
func packages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Name,Imports", module+"...")
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("go list: %v\n%s", err, exit.Stderr)
		}
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 50 {
		t.Fatalf("go list found %d packages: is the module there?", len(pkgs))
	}
	return pkgs
}

// Every package sits in a layer, and imports only its own layer and the
// ones its rule lists: no platform package imports a context, no context
// imports the edge, and nothing below the wiring imports dev or test
// infrastructure or tools.
func TestImportsRunDown(t *testing.T) {
	for _, p := range packages(t) {
		layer, may, ok := layerOf(p.ImportPath)
		if !ok {
			t.Errorf("%s is in no layer of internal/layout: put it in one, or add its layer", p.ImportPath)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			il, _, ok := layerOf(imp)
			if !ok || il == layer {
				continue
			}
			allowed := false
			for _, m := range may {
				allowed = allowed || m == il
			}
			if !allowed {
				t.Errorf("%s (%s) imports %s (%s): %s may import only %v", p.ImportPath, layer, imp, il, layer, may)
			}
		}
	}
}

// No package name is taken twice (commands are all main; test-only
// helper packages are names like any other), so no import needs an alias.
func TestNoPackageNameTakenTwice(t *testing.T) {
	seen := map[string]string{}
	for _, p := range packages(t) {
		if p.Name == "main" {
			continue
		}
		if other, dup := seen[p.Name]; dup {
			t.Errorf("package name %s is taken by %s and %s", p.Name, other, p.ImportPath)
		}
		seen[p.Name] = p.ImportPath
	}
}
