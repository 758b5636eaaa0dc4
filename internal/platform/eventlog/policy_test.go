package eventlog_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"shopstream/internal/platform/eventlog"
	"shopstream/schemas"
)

// At start the shop puts every subject at the policy; the registry then
// refuses a breaking registration from any producer with 409, and
// CheckRegistry names what a careless producer or operator changed.
func TestTheRegistryEnforcesThePolicy(t *testing.T) {
	ctx := context.Background()
	serde, reg := newSerde(t)
	if err := serde.RegisterAll(ctx); err != nil {
		t.Fatal(err)
	}
	cat := serde.Catalog()
	problems, err := eventlog.CheckRegistry(ctx, reg, cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 0 {
		t.Fatalf("a fresh shop registry breaches the policy: %v", problems)
	}
	for _, r := range reg.Compatibility(ctx, "shop.orders.v1-shop.orders.OrderPlaced") {
		if r.Err != nil || r.Level.String() != schemas.Policy {
			t.Fatalf("subject level %v (%v), want %s", r.Level, r.Err, schemas.Policy)
		}
	}

	// A producer adds a required field to OrderPlaced: refused.
	ty, _ := cat.Type("shop.orders.OrderPlaced")
	breaking := strings.Replace(ty.Current().Schema, `"fields":[`, `"fields":[{"name":"coupon","type":"string"},`, 1)
	_, err = reg.CreateSchema(ctx, ty.Subject(), sr.Schema{Schema: breaking, Type: sr.TypeAvro})
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusConflict {
		t.Fatalf("breaking registration: got %v, want 409", err)
	}

	// An operator lowers a subject's level, and a producer registers a
	// subject of its own under a shop topic: both are named.
	if r := reg.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatNone}, ty.Subject()); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	foreign := `{"type":"record","name":"Coupon","namespace":"elsewhere","fields":[{"name":"code","type":"string"}]}`
	if _, err := reg.CreateSchema(ctx, schemas.TopicOrders+"-elsewhere.Coupon", sr.Schema{Schema: foreign, Type: sr.TypeAvro}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateSchema(ctx, ty.Subject(), sr.Schema{Schema: breaking, Type: sr.TypeAvro}); err != nil {
		t.Fatalf("at NONE the registry accepts anything: %v", err)
	}
	problems, err = eventlog.CheckRegistry(ctx, reg, cat)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		ty.Subject() + ": compatibility level is NONE, the policy is FULL_TRANSITIVE",
		schemas.TopicOrders + "-elsewhere.Coupon: a subject under a shop topic that the catalogue does not define",
		ty.Subject() + ": registered version 2 (id",
	}
	for _, w := range want {
		found := false
		for _, p := range problems {
			found = found || strings.HasPrefix(p.String(), w)
		}
		if !found {
			t.Errorf("no problem %q in %v", w, problems)
		}
	}
}
