package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"shopstream/internal/app"
)

// TestAsyncAPICommand: shop asyncapi writes app.AsyncAPI's document to
// stdout, or to -o, and needs no infrastructure.
func TestAsyncAPICommand(t *testing.T) {
	want, err := app.AsyncAPI()
	if err != nil {
		t.Fatal(err)
	}
	noenv := func(string) string { return "" }
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"asyncapi"}, noenv, &stdout, &stderr); err != nil {
		t.Fatalf("shop asyncapi: %v\n%s", err, stderr.String())
	}
	if !bytes.Equal(stdout.Bytes(), want) {
		t.Errorf("stdout (%d bytes) is not app.AsyncAPI() (%d bytes)", stdout.Len(), len(want))
	}
	file := filepath.Join(t.TempDir(), "asyncapi.json")
	stdout.Reset()
	if err := run(context.Background(), []string{"asyncapi", "-o", file}, noenv, &stdout, &stderr); err != nil {
		t.Fatalf("shop asyncapi -o: %v", err)
	}
	if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, want) || stdout.Len() != 0 {
		t.Errorf("-o wrote %d bytes (%v), stdout %d bytes; want the document in the file only", len(got), err, stdout.Len())
	}
	if err := run(context.Background(), []string{"asyncapi", "extra"}, noenv, &stdout, &stderr); err == nil {
		t.Error("an extra argument is accepted")
	}
}
