package eventlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"shopstream/schemas"
)

// SetPolicy sets schemas.Policy as the compatibility level of every subject
// of the catalogue on the registry, so that the registry refuses a breaking
// registration (409) from any producer, the shop's or another's.
func SetPolicy(ctx context.Context, reg *sr.Client, cat *schemas.Catalog) error {
	var level sr.CompatibilityLevel
	if err := level.UnmarshalText([]byte(schemas.Policy)); err != nil {
		return err
	}
	subjects := subjectsOf(cat)
	var errs []error
	for _, r := range reg.SetCompatibility(ctx, sr.SetCompatibility{Level: level}, subjects...) {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("set compatibility %s on subject %s: %w", schemas.Policy, r.Subject, r.Err))
		}
	}
	return errors.Join(errs...)
}

func subjectsOf(cat *schemas.Catalog) []string {
	var out []string
	for _, t := range cat.Types() {
		out = append(out, t.Subject())
	}
	return out
}

// CheckRegistry checks a registry against the catalogue through its
// Confluent API: every subject of the catalogue is at schemas.Policy, the
// current version of each event type is compatible with every version the
// subject holds (as the registry itself decides), every version the subject
// holds is one the catalogue knows, and no subject under a shop topic is
// unknown to the catalogue. An error means the registry could not be asked.
func CheckRegistry(ctx context.Context, reg *sr.Client, cat *schemas.Catalog) ([]schemas.Problem, error) {
	var out []schemas.Problem
	known := map[string]*schemas.Type{}
	for _, t := range cat.Types() {
		known[t.Subject()] = t
	}
	for _, r := range reg.Compatibility(sr.WithParams(ctx, sr.DefaultToGlobal), subjectsOf(cat)...) {
		if r.Err != nil {
			return nil, fmt.Errorf("GET /config/%s: %w", r.Subject, r.Err)
		}
		if r.Level.String() != schemas.Policy {
			out = append(out, schemas.Problem{Subject: r.Subject, Reason: fmt.Sprintf("compatibility level is %s, the policy is %s", r.Level, schemas.Policy)})
		}
	}
	for _, t := range cat.Types() {
		cur := t.Current()
		res, err := reg.CheckCompatibility(sr.WithParams(ctx, sr.Verbose), t.Subject(), -2, sr.Schema{Schema: cur.Schema, Type: sr.TypeAvro})
		if notFound(err) {
			continue // nothing registered yet: anything is compatible
		}
		if err != nil {
			return nil, fmt.Errorf("POST /compatibility/subjects/%s/versions: %w", t.Subject(), err)
		}
		if !res.Is {
			out = append(out, schemas.Problem{Subject: t.Subject(), File: cur.File,
				Reason: "the registry refuses it: " + cmp.Or(strings.Join(res.Messages, "; "), "incompatible")})
		}
	}
	subjects, err := reg.Subjects(ctx)
	if err != nil {
		return nil, fmt.Errorf("GET /subjects: %w", err)
	}
	topics := map[string]bool{}
	for _, s := range schemas.Topics() {
		topics[s.Name] = true
	}
	for _, subj := range subjects {
		t := known[subj]
		if t == nil {
			if topic, _, ok := strings.Cut(subj, "-"); ok && topics[topic] {
				out = append(out, schemas.Problem{Subject: subj, Reason: "a subject under a shop topic that the catalogue does not define (a producer registered it)"})
			}
			continue
		}
		registered, err := reg.Schemas(ctx, subj)
		if err != nil {
			return nil, fmt.Errorf("GET /subjects/%s/versions: %w", subj, err)
		}
		for _, ss := range registered {
			codec, err := goavro.NewCodec(ss.Schema.Schema)
			if err == nil {
				if v, err := cat.Identify(codec); err == nil && v.Type == t {
					continue
				}
			}
			out = append(out, schemas.Problem{Subject: subj, Reason: fmt.Sprintf("registered version %d (id %d) is not a version of the catalogue", ss.Version, ss.ID)})
		}
	}
	return out, nil
}

func notFound(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}
