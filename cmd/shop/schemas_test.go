package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"shopstream/internal/devinfra/embedded/registry"
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
	reg := registryWithTheShopsSubjects(t)
	out, _, err = runShop(t, nil, "schemas", "check", "--registry-url", reg)
	cat, _ := schemas.Load()
	if want := fmt.Sprintf("registry %s: %d subjects checked", reg, len(cat.Types())); err != nil || !strings.Contains(out, want) {
		t.Fatalf("through the registry: err %v\n%s", err, out)
	}
}

// registryWithTheShopsSubjects starts an embedded registry at the policy's
// level holding every subject's current version, as a running shop leaves
// it, and returns its URL.
func registryWithTheShopsSubjects(t *testing.T) string {
	t.Helper()
	reg, err := registry.Start(registry.Config{Compatibility: schemas.Policy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Stop(context.Background()) })
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, ty := range cat.Types() {
		if _, err := cl.CreateSchema(t.Context(), ty.Subject(), sr.Schema{Schema: ty.Current().Schema, Type: sr.TypeAvro}); err != nil {
			t.Fatalf("register %s: %v", ty.Subject(), err)
		}
	}
	return reg.URL()
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
	// A registry holding the shop's subjects refuses it too, through its
	// compatibility API (the check CI can run against any registry).
	reg := registryWithTheShopsSubjects(t)
	out, _, err = runShop(t, nil, "schemas", "check", "--dir", dir, "--registry-url", reg)
	want := "BREAKING shop.catalog.products.v1-shop.catalog.ProductRegistered (shop.catalog.ProductRegistered.v3.avsc): the registry refuses it"
	if err == nil || !strings.Contains(out, want) {
		t.Errorf("through the registry: err %v, output lacks %q:\n%s", err, want, out)
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
