package schemas_test

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"shopstream/schemas"
)

// The schema history of this tree meets the policy, and every version is
// published (in the lock).
func TestTheHistoryMeetsThePolicy(t *testing.T) {
	r, err := schemas.Check(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems {
		t.Errorf("breach: %s", p)
	}
	for _, v := range r.Unpublished {
		t.Errorf("%s is not in %s: run `go run ./cmd/shop schemas lock`", v.File, schemas.LockFile)
	}
	if n := len(r.Catalog.Types()); n < 20 {
		t.Fatalf("only %d types checked", n)
	}
}

// copyOf is the embedded schema folder, with some files replaced.
func copyOf(t *testing.T, replace map[string]string) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(schemas.Embedded(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(schemas.Embedded(), path)
		out[path] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range replace {
		out[name] = &fstest.MapFile{Data: []byte(text)}
	}
	return out
}

const v3 = `{"type":"record","name":"ProductRegistered","namespace":"shop.catalog","fields":[
 {"name":"product_id","type":"string"},
 {"name":"title","type":"string"},
 {"name":"price_cents","type":"long"},
 {"name":"currency","type":"string","default":"EUR"},
 {"name":"quantity","type":"int","aliases":["initial_stock"]},
 {"name":"photo","type":["null","string"],"default":null,"aliases":["photo_url"]}%s]}`

// Each breaking change fails the check, naming the subject and the reason.
func TestBreakingChangesAreNamed(t *testing.T) {
	const subject = "shop.catalog.products.v1-shop.catalog.ProductRegistered"
	for _, tc := range []struct {
		name    string
		replace map[string]string
		subject string
		reason  string
	}{
		{"a new required field", map[string]string{"shop.catalog.ProductRegistered.v3.avsc": strings.Replace(v3, "%s", `,{"name":"sku","type":"string"}`, 1)},
			subject, "v3 cannot read v1 records (backward): reader field sku is missing in writer schema and has no default"},
		{"a rename without alias", map[string]string{"shop.catalog.ProductRegistered.v3.avsc": strings.Replace(strings.Replace(v3, `"aliases":["initial_stock"]`, `"aliases":[]`, 1), "%s", "", 1)},
			subject, "v3 cannot read v2 records (backward): reader field quantity is missing in writer schema"},
		{"a type change", map[string]string{"shop.catalog.ProductRegistered.v3.avsc": strings.Replace(strings.Replace(v3, `"name":"title","type":"string"`, `"name":"title","type":"int"`, 1), "%s", "", 1)},
			subject, "v3 cannot read v1 records (backward): reader schema int not compatible with writer schema string"},
		{"a published version edited in place", map[string]string{"shop.orders.OrderPlaced.v1.avsc": `{"type":"record","name":"OrderPlaced","namespace":"shop.orders","fields":[{"name":"order_id","type":"string"}]}`},
			"shop.orders.v1-shop.orders.OrderPlaced", "a published version was edited in place"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := schemas.Check(copyOf(t, tc.replace))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range r.Problems {
				if p.Subject == tc.subject && strings.Contains(p.Reason, tc.reason) {
					return
				}
			}
			t.Fatalf("no problem for %s with %q; got %v", tc.subject, tc.reason, r.Problems)
		})
	}
}

// The retired v2 of ProductRegistered broke v1 readers: only its
// retirement keeps that pair out of the check, and v3 must still meet both.
func TestARetiredVersionIsExemptOnlyFromTheVersionsBeforeIt(t *testing.T) {
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	ty, _ := cat.Type("shop.catalog.ProductRegistered")
	v2, _ := ty.Version(2)
	if v2.Retired == "" {
		t.Fatal("v2 should be retired")
	}
	// A copy without v3 whose v2 is current cannot be loaded (a retired
	// version cannot be current), so check the v1-v2 pair the way the
	// policy would if v2 were live: as a new version v3 with v2's fields.
	// (An extra optional field keeps its canonical form apart from v2's.)
	end := strings.LastIndex(v2.Schema, "]}")
	v2asV3 := v2.Schema[:end] + `,{"name":"note","type":["null","string"],"default":null}]}`
	r, err := schemas.Check(copyOf(t, map[string]string{"shop.catalog.ProductRegistered.v3.avsc": v2asV3}))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range r.Problems {
		if strings.Contains(p.Reason, "v1 readers cannot read v3 records (forward): reader field quantity is missing") {
			found = true
		}
	}
	if !found {
		t.Fatalf("v2's fields as a live version should break v1 readers; got %v", r.Problems)
	}
}
