package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"shopstream/internal/embedded/registry"
	"shopstream/schemas"
)

// copySchemas copies schemas/avro into a temporary folder.
func copySchemas(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "..", "schemas", "avro")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSchemasCheckPassesOnThisTree(t *testing.T) {
	out, _, err := runShop(t, nil, "schemas", "check", "--dir", filepath.Join("..", "..", "schemas", "avro"))
	if err != nil || !strings.Contains(out, "ok: every subject meets FULL_TRANSITIVE") {
		t.Fatalf("err %v\n%s", err, out)
	}
	reg, err := registry.Start(registry.Config{Compatibility: schemas.Policy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Stop(context.Background()) })
	out, _, err = runShop(t, nil, "schemas", "check", "--registry-url", reg.URL())
	if err != nil || !strings.Contains(out, "registry "+reg.URL()+": 23 subjects checked") {
		t.Fatalf("through the registry: err %v\n%s", err, out)
	}
}

// A deliberately breaking change fails the check, naming the subject and
// the reason; so does a published version edited in place.
func TestSchemasCheckFailsOnABreakingChange(t *testing.T) {
	dir := copySchemas(t)
	v3 := filepath.Join(dir, "shop.catalog.ProductRegistered.v3.avsc")
	b, err := os.ReadFile(v3)
	if err != nil {
		t.Fatal(err)
	}
	breaking := strings.Replace(string(b), `"fields":[`, `"fields":[{"name":"sku","type":"string"},`, 1)
	if err := os.WriteFile(v3, []byte(breaking), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := runShop(t, nil, "schemas", "check", "--dir", dir)
	if err == nil || !strings.Contains(err.Error(), "breaches of the FULL_TRANSITIVE policy") {
		t.Fatalf("want a failure, got %v\n%s", err, out)
	}
	for _, want := range []string{
		"BREAKING shop.catalog.products.v1-shop.catalog.ProductRegistered (shop.catalog.ProductRegistered.v3.avsc): v3 cannot read v1 records (backward): reader field sku is missing in writer schema and has no default",
		"a published version was edited in place",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// `schemas lock` refuses to record a breaking history.
	if _, _, err := runShop(t, nil, "schemas", "lock", "--dir", dir); err == nil {
		t.Fatal("lock accepted a breaking history")
	}
}

func TestSchemasUsage(t *testing.T) {
	if _, _, err := runShop(t, nil, "schemas"); err == nil || !strings.Contains(err.Error(), "give check or lock") {
		t.Fatalf("got %v", err)
	}
	if _, _, err := runShop(t, nil, "schemas", "check", "--dir", "/nonexistent"); err == nil || !strings.Contains(err.Error(), "--dir /nonexistent") {
		t.Fatalf("got %v", err)
	}
}
