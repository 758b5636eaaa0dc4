package schemas

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"

	"github.com/hamba/avro/v2"
)

// Policy is the compatibility level of every subject of the event log.
//
// Other teams read these topics with the schema the registry gives them and,
// when they decode into generated classes, with the schema they were built
// with. FULL_TRANSITIVE is what lets both sides upgrade in any order: a
// reader built with any version reads records written with any other, old
// consumers read new events and new consumers read old ones, including a
// replay of the whole log. It allows adding or removing a field only with a
// default, and a rename only by alias while the old name stays readable.
//
// The shop sets this level on each of its subjects at start (Serde.RegisterAll),
// the embedded registry uses it as its global default, and `shop schemas
// check` verifies the .avsc history against it, offline and through a
// registry's compatibility API.
const Policy = "FULL_TRANSITIVE"

// LockFile names the file, beside the .avsc files, that records the
// fingerprint of every published version. A published version is immutable:
// a change is a new version file, never an edit in place.
const LockFile = "published.json"

// Problem is one breach of the contract policy, named by its subject.
type Problem struct {
	Subject string
	File    string // the .avsc file concerned, when there is one
	Reason  string
}

func (p Problem) String() string {
	if p.File == "" {
		return p.Subject + ": " + p.Reason
	}
	return p.Subject + " (" + p.File + "): " + p.Reason
}

// Report is the result of checking a schema history.
type Report struct {
	Catalog     *Catalog
	Problems    []Problem
	Unpublished []*Version // versions not yet in the lock: compatible, new
}

// Check loads the .avsc files and the lock of fsys and checks them: the
// files form a valid catalogue (LoadFS), every version recorded in the lock
// is unchanged, and every event type's history meets Policy (CheckPolicy).
// An error means the files could not be read at all; breaches are Problems.
func Check(fsys fs.FS) (Report, error) {
	cat, err := LoadFS(fsys)
	if err != nil {
		return Report{}, err
	}
	lock, err := ReadLock(fsys)
	if err != nil {
		return Report{}, err
	}
	r := Report{Catalog: cat, Problems: cat.CheckPolicy()}
	problems, unpublished := cat.CheckLock(lock)
	r.Problems = append(r.Problems, problems...)
	r.Unpublished = unpublished
	return r, nil
}

// Embedded is the schema folder built into this binary (schemas/avro).
func Embedded() fs.FS {
	sub, err := fs.Sub(avroFiles, "avro")
	if err != nil {
		panic(err) // the embed pattern guarantees the folder
	}
	return sub
}

// CheckPolicy checks every event type's versions pairwise against Policy:
// each version reads the records of every other and every other reads its
// records, as hamba/avro's implementation of the Avro resolution rules
// decides. A retired version is exempt from the versions before it (that is
// the break it made), never from the versions after it.
func (c *Catalog) CheckPolicy() []Problem {
	var out []Problem
	for _, t := range c.Types() {
		vs := t.Versions()
		parsed := make([]avro.Schema, len(vs))
		for i, v := range vs {
			s, err := v.parse()
			if err != nil {
				out = append(out, Problem{Subject: t.Subject(), File: v.File, Reason: "hamba/avro cannot parse it: " + err.Error()})
			}
			parsed[i] = s
		}
		for j, newer := range vs {
			if newer.Retired != "" {
				continue
			}
			for i, older := range vs[:j] {
				if parsed[i] == nil || parsed[j] == nil {
					continue
				}
				if err := compatible(parsed[j], parsed[i]); err != nil {
					out = append(out, Problem{Subject: t.Subject(), File: newer.File,
						Reason: fmt.Sprintf("v%d cannot read v%d records (backward): %v", newer.Number, older.Number, err)})
				}
				if err := compatible(parsed[i], parsed[j]); err != nil {
					out = append(out, Problem{Subject: t.Subject(), File: newer.File,
						Reason: fmt.Sprintf("v%d readers cannot read v%d records (forward): %v", older.Number, newer.Number, err)})
				}
			}
		}
	}
	return out
}

// compatible reports whether reader can read writer's records, on a
// SchemaCompatibility of its own: hamba/avro caches verdicts by the
// schemas' Parsing Canonical Form fingerprints, which leave defaults out, so
// a shared instance answers a pair with the verdict of another pair whose
// schemas differ only in a default (a field b with a default, then without).
func compatible(reader, writer avro.Schema) error {
	return avro.NewSchemaCompatibility().Compatible(reader, writer)
}

// Lock maps each published .avsc file to the SHA-256 of its Parsing
// Canonical Form, in hex.
type Lock map[string]string

// ReadLock reads LockFile from fsys; a missing file is an empty lock.
func ReadLock(fsys fs.FS) (Lock, error) {
	b, err := fs.ReadFile(fsys, LockFile)
	if errors.Is(err, fs.ErrNotExist) {
		return Lock{}, nil
	}
	if err != nil {
		return nil, err
	}
	var l Lock
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("%s: %w", LockFile, err)
	}
	return l, nil
}

// Marshal renders the lock with sorted keys, one file a line.
func (l Lock) Marshal() []byte {
	b, _ := json.MarshalIndent(l, "", "  ") // map keys are sorted
	return append(b, '\n')
}

// Fingerprint is the SHA-256 of the version's Parsing Canonical Form, in hex.
func (v *Version) Fingerprint() string {
	s, err := v.parse()
	if err != nil {
		return "unparsable"
	}
	fp := s.Fingerprint()
	return hex.EncodeToString(fp[:])
}

// CheckLock compares the versions with the lock: a locked file that is gone
// or whose canonical form changed is a problem (published versions are
// immutable); versions the lock does not hold are returned as unpublished.
func (c *Catalog) CheckLock(l Lock) (problems []Problem, unpublished []*Version) {
	byFile := map[string]*Version{}
	for _, t := range c.Types() {
		for _, v := range t.Versions() {
			byFile[v.File] = v
			fp, locked := l[v.File]
			switch {
			case !locked:
				unpublished = append(unpublished, v)
			case fp != v.Fingerprint():
				problems = append(problems, Problem{Subject: t.Subject(), File: v.File,
					Reason: "a published version was edited in place (its canonical form changed): published versions are immutable, add a new version file instead"})
			}
		}
	}
	for _, f := range slices.Sorted(maps.Keys(l)) {
		if byFile[f] == nil {
			problems = append(problems, Problem{Subject: f, File: f, Reason: "a published version was deleted: records written with it could no longer be read"})
		}
	}
	return problems, unpublished
}

// Locked returns l with the unpublished versions added; it never changes
// an entry already there.
func (l Lock) Locked(unpublished []*Version) Lock {
	out := maps.Clone(l)
	if out == nil {
		out = Lock{}
	}
	for _, v := range unpublished {
		if _, ok := out[v.File]; !ok {
			out[v.File] = v.Fingerprint()
		}
	}
	return out
}

// parse parses the version with hamba/avro, in a cache of its own so that
// the versions of one record name do not collide.
func (v *Version) parse() (avro.Schema, error) {
	return avro.ParseWithCache(v.Schema, "", &avro.SchemaCache{})
}
