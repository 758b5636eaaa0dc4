package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"

	"shopstream/internal/app"
)

// runACLs prints, and with --apply creates, the Kafka ACLs a principal
// running --components needs (app.Grants), and no more: a deployment runs
// it once per component's principal, as the cluster's admin.
func runACLs(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("acls", stderr)
	components := fs.String("components", "", "components the principal runs, comma-separated: all, or "+strings.Join(app.Components(), ", "))
	principal := fs.String("principal", "", "the principal, e.g. User:saga (the SASL user a component runs as)")
	apply := fs.Bool("apply", false, "create the ACLs on the cluster (as --kafka-user, who may alter ACLs); without it, print them only")
	target := addBrokerTarget(fs)
	if err := parse(fs, args, getenv); err != nil {
		return err
	}
	if *components == "" {
		return fmt.Errorf("--components: name what the principal runs")
	}
	comps, err := app.ParseComponents(*components)
	if err != nil {
		return fmt.Errorf("--components: %w", err)
	}
	if !strings.HasPrefix(*principal, "User:") || len(*principal) == len("User:") {
		return fmt.Errorf("--principal %q: want User:<name>", *principal)
	}
	grants := app.Grants(comps)
	for _, g := range grants {
		fmt.Fprintf(stdout, "%s %s\n", *principal, g)
	}
	if !*apply {
		return nil
	}
	cl, _, err := target.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	n := 0
	for i, acl := range app.ACLs(*principal, grants) {
		results, err := adm.CreateACLs(ctx, acl)
		if err == nil {
			for _, r := range results {
				err = cmp.Or(err, r.Err)
			}
		}
		if err != nil {
			return fmt.Errorf("create %s for %s: %w", grants[i], *principal, err)
		}
		n++
	}
	fmt.Fprintf(stdout, "created %d ACLs for %s\n", n, *principal)
	return nil
}
