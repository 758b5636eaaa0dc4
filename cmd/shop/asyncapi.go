package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"shopstream/internal/app"
)

// runAsyncAPI writes the AsyncAPI 3.0 document of the event log (the same
// the gateway serves at GET /asyncapi.json), generated from the schema
// catalogue, to stdout or to -o. It needs no infrastructure.
func runAsyncAPI(_ context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("asyncapi", stderr)
	out := fs.String("o", "", "write the document to this file instead of stdout")
	// No SHOP_* variables: the output file is the only flag.
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	doc, err := app.AsyncAPI()
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(doc)
		return err
	}
	if err := os.WriteFile(*out, doc, 0o644); err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	return nil
}
