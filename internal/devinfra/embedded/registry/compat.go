package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hamba/avro/v2"
)

// Compatibility levels, as Confluent spells them.
const (
	None               = "NONE"
	Backward           = "BACKWARD"
	BackwardTransitive = "BACKWARD_TRANSITIVE"
	Forward            = "FORWARD"
	ForwardTransitive  = "FORWARD_TRANSITIVE"
	Full               = "FULL"
	FullTransitive     = "FULL_TRANSITIVE"
)

// Modes, as Confluent spells them.
const (
	ReadWrite = "READWRITE"
	ReadOnly  = "READONLY"
	Import    = "IMPORT"
)

// level normalises a compatibility level (Confluent accepts any case);
// ok is false for an unknown one.
func level(s string) (string, bool) {
	switch l := strings.ToUpper(strings.TrimSpace(s)); l {
	case None, Backward, BackwardTransitive, Forward, ForwardTransitive, Full, FullTransitive:
		return l, true
	}
	return "", false
}

// mode normalises a mode; ok is false for an unknown one.
func mode(s string) (string, bool) {
	switch m := strings.ToUpper(strings.TrimSpace(s)); m {
	case ReadWrite, ReadOnly, Import:
		return m, true
	}
	return "", false
}

// transitive reports whether a level checks every live version rather than
// only the latest.
func transitive(l string) bool { return strings.HasSuffix(l, "_TRANSITIVE") }

// errNotAvro is returned for a schema type this registry does not handle.
var errNotAvro = errors.New("only AVRO schemas are supported by this registry (the embedded one of shop dev); JSON and PROTOBUF are not")

// schemaType normalises a schemaType field ("" means AVRO).
func schemaType(t string) (string, error) {
	switch strings.ToUpper(t) {
	case "", "AVRO":
		return "AVRO", nil
	case "JSON", "PROTOBUF":
		return "", fmt.Errorf("schema type %s: %w", strings.ToUpper(t), errNotAvro)
	}
	return "", fmt.Errorf("invalid schema type %q: %w", t, errNotAvro)
}

// resolver returns the text and references of a referenced subject version
// (version -1 is the latest live one).
type resolver func(subject string, version int) (schema string, refs []Reference, err error)

// parse parses an Avro schema with a fresh name cache, so that names of one
// schema never leak into another. Referenced schemas are parsed first into
// the same cache, depth first, so that the schema may use their named
// types. It returns the parsed schema and its normalised form: the full
// JSON form as hamba prints it (whitespace, key order and redundant
// namespaces normalised; doc, defaults, aliases and custom properties
// kept, unlike the Parsing Canonical Form, so that adding a default is a
// new schema as it is for Confluent).
func parse(text string, refs []Reference, resolve resolver) (avro.Schema, string, error) {
	if !json.Valid([]byte(text)) {
		return nil, "", errors.New("the schema is not valid JSON")
	}
	cache := &avro.SchemaCache{}
	seen := map[string]bool{}
	var load func(refs []Reference, depth int) error
	load = func(refs []Reference, depth int) error {
		if depth > 32 {
			return errors.New("references nest deeper than 32 levels")
		}
		for _, r := range refs {
			key := fmt.Sprintf("%s/%d", r.Subject, r.Version)
			if seen[key] {
				continue
			}
			seen[key] = true
			if resolve == nil {
				return fmt.Errorf("reference %s: references cannot be resolved here", r.Name)
			}
			text, sub, err := resolve(r.Subject, r.Version)
			if err != nil {
				return fmt.Errorf("reference %s (%s version %d): %w", r.Name, r.Subject, r.Version, err)
			}
			if err := load(sub, depth+1); err != nil {
				return err
			}
			if _, err := avro.ParseWithCache(text, "", cache); err != nil {
				return fmt.Errorf("reference %s (%s version %d): %w", r.Name, r.Subject, r.Version, err)
			}
		}
		return nil
	}
	if err := load(refs, 0); err != nil {
		return nil, "", err
	}
	s, err := avro.ParseWithCache(text, "", cache)
	if err != nil {
		return nil, "", err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, "", err
	}
	return s, string(b), nil
}

// compatible checks a new schema against an existing one in the direction(s)
// the level asks for: BACKWARD means the new schema reads data written with
// the old one, FORWARD the old one reads data of the new one, FULL both.
// The verdict is hamba/avro's; a fresh SchemaCompatibility per call, since
// its cache is keyed by Parsing Canonical Form fingerprints, which do not
// tell apart schemas that differ only in defaults or aliases.
func compatible(lvl string, next, old avro.Schema) error {
	lvl = strings.TrimSuffix(lvl, "_TRANSITIVE")
	if lvl == Backward || lvl == Full {
		if err := avro.NewSchemaCompatibility().Compatible(next, old); err != nil {
			return fmt.Errorf("the new schema cannot read data written with it (backward): %w", err)
		}
	}
	if lvl == Forward || lvl == Full {
		if err := avro.NewSchemaCompatibility().Compatible(old, next); err != nil {
			return fmt.Errorf("it cannot read data written with the new schema (forward): %w", err)
		}
	}
	return nil
}
