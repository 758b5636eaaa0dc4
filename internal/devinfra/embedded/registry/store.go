package registry

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hamba/avro/v2"
)

// Reference is a schema reference, stored and returned as given; the
// registry resolves it only to parse the referencing schema.
type Reference struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// schema is one registered schema, under its global id.
type schema struct {
	ID     int
	Text   string // as first registered
	Type   string // AVRO
	Refs   []Reference
	key    string      // type, normalised form and references: equal keys are the same schema
	parsed avro.Schema // lazily
}

// version is one version of a subject.
type version struct {
	Version int
	ID      int
	Deleted bool // soft-deleted
}

// subject holds a subject's versions (ascending) and its own settings.
type subject struct {
	versions []*version
	compat   string // "" when the subject has none of its own
	mode     string
}

// empty reports whether the subject has neither versions nor settings of
// its own, so that nothing is lost by forgetting it.
func (s *subject) empty() bool {
	return len(s.versions) == 0 && s.compat == "" && s.mode == ""
}

func (s *subject) live() []*version {
	var out []*version
	for _, v := range s.versions {
		if !v.Deleted {
			out = append(out, v)
		}
	}
	return out
}

func (s *subject) find(n int) *version {
	for _, v := range s.versions {
		if v.Version == n {
			return v
		}
	}
	return nil
}

// state is everything the registry persists.
type state struct {
	schemas  map[int]*schema
	byKey    map[string]int
	subjects map[string]*subject
	compat   string // global level set by PUT /config; "" means the configured default
	mode     string // global mode; "" means READWRITE
	nextID   int

	warnings []string // from loading, not persisted
}

func newState() *state {
	return &state{schemas: map[int]*schema{}, byKey: map[string]int{}, subjects: map[string]*subject{}, nextID: 1}
}

// clone copies the state deeply enough that a failed change can be undone.
func (st *state) clone() *state {
	c := &state{schemas: maps.Clone(st.schemas), byKey: maps.Clone(st.byKey), subjects: map[string]*subject{},
		compat: st.compat, mode: st.mode, nextID: st.nextID}
	for name, s := range st.subjects {
		cs := &subject{compat: s.compat, mode: s.mode}
		for _, v := range s.versions {
			cv := *v
			cs.versions = append(cs.versions, &cv)
		}
		c.subjects[name] = cs
	}
	return c
}

// entry is one persisted subject version; a JSON array of these (without
// deleted) is the file format of the srfake-based registry.
type entry struct {
	Subject    string      `json:"subject"`
	Version    int         `json:"version"`
	ID         int         `json:"id"`
	Schema     string      `json:"schema"`
	Type       string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
	Deleted    bool        `json:"deleted,omitempty"`
}

// file is the persisted format since format 2.
type file struct {
	Format        int                        `json:"format"`
	Compatibility string                     `json:"compatibility,omitempty"` // global, when set through PUT /config
	Mode          string                     `json:"mode,omitempty"`          // global
	Config        map[string]subjectSettings `json:"subjects,omitempty"`      // per-subject settings
	NextID        int                        `json:"nextId"`
	Versions      []entry                    `json:"versions"`
	Retired       []entry                    `json:"retired,omitempty"` // schemas no version uses any more (subject and version empty); kept so that their ids are never given to another schema
}

type subjectSettings struct {
	Compatibility string `json:"compatibility,omitempty"`
	Mode          string `json:"mode,omitempty"`
}

const fileFormat = 2

func (st *state) marshal() ([]byte, error) {
	f := file{Format: fileFormat, Compatibility: st.compat, Mode: st.mode, NextID: st.nextID, Config: map[string]subjectSettings{}, Versions: []entry{}}
	used := map[int]bool{}
	for _, name := range slices.Sorted(maps.Keys(st.subjects)) {
		s := st.subjects[name]
		if s.compat != "" || s.mode != "" {
			f.Config[name] = subjectSettings{Compatibility: s.compat, Mode: s.mode}
		}
		for _, v := range s.versions {
			sc := st.schemas[v.ID]
			used[v.ID] = true
			f.Versions = append(f.Versions, entry{Subject: name, Version: v.Version, ID: v.ID, Schema: sc.Text, Type: sc.Type, References: sc.Refs, Deleted: v.Deleted})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(st.schemas)) {
		if !used[id] {
			sc := st.schemas[id]
			f.Retired = append(f.Retired, entry{ID: id, Schema: sc.Text, Type: sc.Type, References: sc.Refs})
		}
	}
	return json.MarshalIndent(f, "", "  ")
}

// save writes the state to path atomically: a temporary file, synced, then
// renamed over the old one.
func (st *state) save(path string) error {
	b, err := st.marshal()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// load reads a registry file in either format: the srfake-era JSON array of
// entries, or the format-2 object.
func load(path string) (*state, error) {
	st := newState()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read schema registry file: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return st, nil
	}
	var f file
	if b[0] == '[' {
		if err := json.Unmarshal(b, &f.Versions); err != nil {
			return nil, fmt.Errorf("schema registry file %s: %w", path, err)
		}
	} else if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("schema registry file %s: %w", path, err)
	} else if f.Format > fileFormat {
		return nil, fmt.Errorf("schema registry file %s: format %d is newer than this build reads (%d)", path, f.Format, fileFormat)
	}
	if err := st.restore(f); err != nil {
		return nil, fmt.Errorf("schema registry file %s: %w", path, err)
	}
	return st, nil
}

func (st *state) restore(f file) error {
	if f.Compatibility != "" {
		l, ok := level(f.Compatibility)
		if !ok {
			return fmt.Errorf("invalid global compatibility %q", f.Compatibility)
		}
		st.compat = l
	}
	if f.Mode != "" {
		m, ok := mode(f.Mode)
		if !ok {
			return fmt.Errorf("invalid global mode %q", f.Mode)
		}
		st.mode = m
	}
	for name, c := range f.Config {
		s := st.subject(name)
		if c.Compatibility != "" {
			l, ok := level(c.Compatibility)
			if !ok {
				return fmt.Errorf("subject %s: invalid compatibility %q", name, c.Compatibility)
			}
			s.compat = l
		}
		if c.Mode != "" {
			m, ok := mode(c.Mode)
			if !ok {
				return fmt.Errorf("subject %s: invalid mode %q", name, c.Mode)
			}
			s.mode = m
		}
	}
	// Schemas first, in id order, so that references to other subjects
	// resolve whatever the order of the file.
	all := append(slices.Clone(f.Versions), f.Retired...)
	slices.SortFunc(all, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Version, b.Version))
	})
	for _, e := range all {
		if e.ID <= 0 {
			return fmt.Errorf("%s version %d: invalid id %d", e.Subject, e.Version, e.ID)
		}
		if sc, ok := st.schemas[e.ID]; ok {
			if sc.Text != e.Schema {
				// Same id, other text: it must at least be the same schema.
				if k, err := st.keyOf(e); err != nil || k != sc.key {
					return fmt.Errorf("id %d holds two different schemas", e.ID)
				}
			}
			continue
		}
		typ, err := schemaType(e.Type)
		if err != nil {
			typ = strings.ToUpper(e.Type) // kept as stored; keyOf fails on it below
		}
		st.schemas[e.ID] = &schema{ID: e.ID, Text: e.Schema, Type: typ, Refs: e.References}
		st.nextID = max(st.nextID, e.ID+1)
	}
	for _, e := range f.Versions {
		if e.Version <= 0 {
			return fmt.Errorf("%s: invalid version %d", e.Subject, e.Version)
		}
		s := st.subject(e.Subject)
		if s.find(e.Version) != nil {
			return fmt.Errorf("%s version %d twice", e.Subject, e.Version)
		}
		s.versions = append(s.versions, &version{Version: e.Version, ID: e.ID, Deleted: e.Deleted})
	}
	for _, s := range st.subjects {
		slices.SortFunc(s.versions, func(a, b *version) int { return cmp.Compare(a.Version, b.Version) })
	}
	// Keys need the references resolvable, hence after the versions.
	for _, id := range slices.Sorted(maps.Keys(st.schemas)) {
		sc := st.schemas[id]
		k, err := st.keyOf(entry{Schema: sc.Text, Type: sc.Type, References: sc.Refs})
		if err != nil {
			// Served by id as stored, never matched by a registration
			// (which then gets a new id) nor checked against.
			st.warnings = append(st.warnings, fmt.Sprintf("schema id %d does not parse (%v); it is served as stored but takes no part in lookups or compatibility checks", id, err))
			k = fmt.Sprintf("unparsed\x00%d", id)
		}
		sc.key = k
		if _, dup := st.byKey[k]; !dup {
			st.byKey[k] = id
		}
	}
	st.nextID = max(st.nextID, f.NextID)
	return nil
}

func (st *state) keyOf(e entry) (string, error) {
	typ, err := schemaType(e.Type)
	if err != nil {
		return "", err
	}
	_, norm, err := parse(e.Schema, e.References, st.resolve)
	if err != nil {
		return "", err
	}
	return key(typ, norm, e.References), nil
}

// key identifies a schema: equal keys get the same id.
func key(typ, normalised string, refs []Reference) string {
	r, _ := json.Marshal(refs)
	return typ + "\x00" + normalised + "\x00" + string(r)
}

// subject returns the named subject, creating it empty.
func (st *state) subject(name string) *subject {
	s, ok := st.subjects[name]
	if !ok {
		s = &subject{}
		st.subjects[name] = s
	}
	return s
}

// resolve finds a referenced subject version's schema, soft-deleted or not
// (version -1: the latest live one).
func (st *state) resolve(subj string, n int) (string, []Reference, error) {
	s, ok := st.subjects[subj]
	if !ok {
		return "", nil, fmt.Errorf("subject %s not found", subj)
	}
	var v *version
	if n == -1 {
		if live := s.live(); len(live) > 0 {
			v = live[len(live)-1]
		}
	} else {
		v = s.find(n)
	}
	if v == nil {
		return "", nil, fmt.Errorf("subject %s has no version %d", subj, n)
	}
	sc := st.schemas[v.ID]
	return sc.Text, sc.Refs, nil
}

// parsed returns the parsed form of a stored schema.
func (st *state) parsed(sc *schema) (avro.Schema, error) {
	if sc.parsed == nil {
		p, _, err := parse(sc.Text, sc.Refs, st.resolve)
		if err != nil {
			return nil, fmt.Errorf("stored schema %d: %w", sc.ID, err)
		}
		sc.parsed = p
	}
	return sc.parsed, nil
}

// inUse reports whether a version (live or soft-deleted) has the id.
func (st *state) inUse(id int) bool {
	for _, s := range st.subjects {
		for _, v := range s.versions {
			if v.ID == id {
				return true
			}
		}
	}
	return false
}
