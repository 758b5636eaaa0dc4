package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
)

const contentType = "application/vnd.schemaregistry.v1+json"

// apiError is an error answer in Confluent's shape.
type apiError struct {
	status int
	code   int
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.code, e.msg) }

func errSubjectNotFound(s string) error {
	return &apiError{404, 40401, fmt.Sprintf("Subject '%s' not found.", s)}
}
func errVersionNotFound(v int) error {
	return &apiError{404, 40402, fmt.Sprintf("Version %d not found.", v)}
}
func errSchemaNotFound(msg string) error { return &apiError{404, 40403, msg} }
func errInvalidSchema(err error) error {
	return &apiError{422, 42201, "Invalid schema: " + err.Error()}
}
func errInvalidVersion(v string) error {
	return &apiError{422, 42202, fmt.Sprintf("The specified version '%s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"", v)}
}
func errInvalidLevel() error {
	return &apiError{422, 42203, "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"}
}
func errInvalidMode() error {
	return &apiError{422, 42204, "Invalid mode. Valid values are READWRITE, READONLY, IMPORT"}
}
func errNotPermitted(msg string) error { return &apiError{422, 42205, msg} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = 500, []byte(`{"error_code":50000,"message":"could not encode the answer"}`)
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeErr(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{500, 50001, err.Error()}
	}
	writeJSON(w, ae.status, map[string]any{"error_code": ae.code, "message": ae.msg})
}

// handler adapts a handler returning (status 200 body, error).
func handler(fn func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(r)
		if err != nil {
			writeErr(w, err)
			return
		}
		if raw, ok := v.(rawText); ok {
			w.Header().Set("Content-Type", contentType)
			_, _ = io.WriteString(w, string(raw))
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// rawText is an answer written as is (a raw schema).
type rawText string

func flag(r *http.Request, name string) bool {
	v, _ := strconv.ParseBool(r.URL.Query().Get(name))
	return v
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, fn func(r *http.Request) (any, error)) { mux.Handle(pattern, handler(fn)) }

	h("GET /{$}", func(*http.Request) (any, error) { return map[string]any{}, nil })
	h("GET /schemas/types", func(*http.Request) (any, error) { return []string{"AVRO"}, nil })
	h("GET /schemas", s.listSchemas)
	h("GET /schemas/ids/{id}", s.schemaByID)
	h("GET /schemas/ids/{id}/schema", s.schemaTextByID)
	h("GET /schemas/ids/{id}/versions", s.versionsByID)
	h("GET /schemas/ids/{id}/subjects", s.subjectsByID)

	h("GET /subjects", s.listSubjects)
	h("POST /subjects/{subject}", s.lookup)
	h("DELETE /subjects/{subject}", s.deleteSubject)
	h("GET /subjects/{subject}/versions", s.listVersions)
	h("POST /subjects/{subject}/versions", s.register)
	h("GET /subjects/{subject}/versions/{version}", s.getVersion)
	h("GET /subjects/{subject}/versions/{version}/schema", s.getVersionText)
	h("GET /subjects/{subject}/versions/{version}/referencedby", s.referencedBy)
	h("DELETE /subjects/{subject}/versions/{version}", s.deleteVersion)

	h("POST /compatibility/subjects/{subject}/versions", s.checkAll)
	h("POST /compatibility/subjects/{subject}/versions/{version}", s.checkVersion)

	h("GET /config", s.getConfig)
	h("PUT /config", s.putConfig)
	h("DELETE /config", s.deleteConfig)
	h("GET /config/{subject}", s.getConfig)
	h("PUT /config/{subject}", s.putConfig)
	h("DELETE /config/{subject}", s.deleteConfig)

	h("GET /mode", s.getMode)
	h("PUT /mode", s.putMode)
	h("DELETE /mode", s.deleteMode)
	h("GET /mode/{subject}", s.getMode)
	h("PUT /mode/{subject}", s.putMode)
	h("DELETE /mode/{subject}", s.deleteMode)

	// Everything else: 405 when the path exists with another method, 404
	// otherwise, both in Confluent's JSON shape.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			r2 := r.Clone(r.Context())
			r2.Method = m
			if _, p := mux.Handler(r2); p != "/" && p != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error_code": 405, "message": "HTTP " + r.Method + " is not allowed on " + r.URL.Path})
			return
		}
		writeJSON(w, http.StatusNotFound, map[string]any{"error_code": 404, "message": "HTTP 404 Not Found: " + r.URL.Path})
	})
	return http.MaxBytesHandler(mux, 16<<20)
}

// --- bodies and answers ---

type schemaBody struct {
	Schema     string      `json:"schema"`
	SchemaType string      `json:"schemaType"`
	References []Reference `json:"references"`
	ID         int         `json:"id"`
	Version    int         `json:"version"`
}

// subjectSchema is Confluent's {subject,version,id,schema} answer.
type subjectSchema struct {
	Subject    string      `json:"subject"`
	Version    int         `json:"version"`
	ID         int         `json:"id"`
	SchemaType string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
	Schema     string      `json:"schema"`
}

func answer(name string, v *version, sc *schema) subjectSchema {
	return subjectSchema{Subject: name, Version: v.Version, ID: v.ID, SchemaType: notAvro(sc.Type), References: sc.Refs, Schema: sc.Text}
}

// notAvro is the schemaType to show: Confluent omits it for AVRO.
func notAvro(t string) string {
	if t == "AVRO" {
		return ""
	}
	return t
}

// candidate is a parsed request schema.
type candidate struct {
	body   schemaBody
	typ    string
	key    string
	parsed avro.Schema
}

// readBody decodes a request's schema body (before taking the lock, so
// that a slow client does not hold up the registry).
func readBody(r *http.Request) (schemaBody, error) {
	var b schemaBody
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		return b, errInvalidSchema(fmt.Errorf("the request body is not a JSON schema object: %v", err))
	}
	return b, nil
}

// candidateOf parses a request's schema; st resolves references.
func candidateOf(b schemaBody, st *state) (*candidate, error) {
	typ, err := schemaType(b.SchemaType)
	if err != nil {
		return nil, errInvalidSchema(err)
	}
	if strings.TrimSpace(b.Schema) == "" {
		return nil, errInvalidSchema(errors.New("empty schema"))
	}
	p, norm, err := parse(b.Schema, b.References, st.resolve)
	if err != nil {
		return nil, errInvalidSchema(err)
	}
	return &candidate{body: b, typ: typ, key: key(typ, norm, b.References), parsed: p}, nil
}

// versionArg parses a {version}: N, "latest" or -1 (-1 for latest).
func versionArg(r *http.Request) (int, error) {
	raw := r.PathValue("version")
	if raw == "latest" || raw == "-1" {
		return -1, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > math.MaxInt32 {
		return 0, errInvalidVersion(raw)
	}
	return n, nil
}

// liveSubject returns a subject with at least one version visible (live,
// or any when deleted is set), else 40401.
func (st *state) liveSubject(name string, deleted bool) (*subject, error) {
	s, ok := st.subjects[name]
	if !ok || len(s.versions) == 0 || (!deleted && len(s.live()) == 0) {
		return nil, errSubjectNotFound(name)
	}
	return s, nil
}

// pick finds a visible version (n = -1: the latest visible one).
func (s *subject) pick(n int, deleted bool) (*version, error) {
	vs := s.versions
	if !deleted {
		vs = s.live()
	}
	if n == -1 {
		if len(vs) == 0 {
			return nil, errVersionNotFound(n)
		}
		return vs[len(vs)-1], nil
	}
	for _, v := range vs {
		if v.Version == n {
			return v, nil
		}
	}
	return nil, errVersionNotFound(n)
}

// --- schemas ---

func (s *Server) idArg(r *http.Request, st *state) (*schema, error) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		return nil, errSchemaNotFound("Schema " + r.PathValue("id") + " not found")
	}
	sc, ok := st.schemas[id]
	if !ok || !st.inUse(id) {
		return nil, errSchemaNotFound(fmt.Sprintf("Schema %d not found", id))
	}
	return sc, nil
}

// schemaByID ignores ?subject=: ids are global, and Confluent finds the id
// whatever subject the client names.
func (s *Server) schemaByID(r *http.Request) (any, error) {
	var out map[string]any
	err := s.read(func(st *state) error {
		sc, err := s.idArg(r, st)
		if err != nil {
			return err
		}
		out = map[string]any{"schema": sc.Text}
		if t := notAvro(sc.Type); t != "" {
			out["schemaType"] = t
		}
		if len(sc.Refs) > 0 {
			out["references"] = sc.Refs
		}
		if flag(r, "fetchMaxId") {
			out["maxId"] = slices.Max(slices.Collect(maps.Keys(st.schemas)))
		}
		return nil
	})
	return out, err
}

func (s *Server) schemaTextByID(r *http.Request) (any, error) {
	var out rawText
	err := s.read(func(st *state) error {
		sc, err := s.idArg(r, st)
		if err == nil {
			out = rawText(sc.Text)
		}
		return err
	})
	return out, err
}

func (s *Server) usages(r *http.Request, st *state) ([]map[string]any, error) {
	sc, err := s.idArg(r, st)
	if err != nil {
		return nil, err
	}
	deleted := flag(r, "deleted")
	out := []map[string]any{}
	for _, name := range slices.Sorted(maps.Keys(st.subjects)) {
		for _, v := range st.subjects[name].versions {
			if v.ID == sc.ID && (deleted || !v.Deleted) {
				out = append(out, map[string]any{"subject": name, "version": v.Version})
			}
		}
	}
	return out, nil
}

func (s *Server) versionsByID(r *http.Request) (any, error) {
	var out []map[string]any
	err := s.read(func(st *state) (err error) { out, err = s.usages(r, st); return err })
	return out, err
}

func (s *Server) subjectsByID(r *http.Request) (any, error) {
	out := []string{}
	err := s.read(func(st *state) error {
		us, err := s.usages(r, st)
		for _, u := range us {
			if name := u["subject"].(string); !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
		return err
	})
	return out, err
}

func (s *Server) listSchemas(r *http.Request) (any, error) {
	out := []subjectSchema{}
	prefix, deleted, latest := r.URL.Query().Get("subjectPrefix"), flag(r, "deleted"), flag(r, "latestOnly")
	err := s.read(func(st *state) error {
		for _, name := range slices.Sorted(maps.Keys(st.subjects)) {
			if !strings.HasPrefix(name, prefix) {
				continue
			}
			vs := st.subjects[name].versions
			if !deleted {
				vs = st.subjects[name].live()
			}
			if latest && len(vs) > 0 {
				vs = vs[len(vs)-1:]
			}
			for _, v := range vs {
				out = append(out, answer(name, v, st.schemas[v.ID]))
			}
		}
		return nil
	})
	return out, err
}

// --- subjects ---

func (s *Server) listSubjects(r *http.Request) (any, error) {
	out := []string{}
	prefix, deleted, only := r.URL.Query().Get("subjectPrefix"), flag(r, "deleted"), flag(r, "deletedOnly")
	err := s.read(func(st *state) error {
		for _, name := range slices.Sorted(maps.Keys(st.subjects)) {
			sub := st.subjects[name]
			live := len(sub.live()) > 0
			soft := len(sub.versions) > 0 && !live
			if strings.HasPrefix(name, prefix) && (live && !only || soft && (deleted || only)) {
				out = append(out, name)
			}
		}
		return nil
	})
	return out, err
}

func (s *Server) listVersions(r *http.Request) (any, error) {
	out := []int{}
	name, deleted, only := r.PathValue("subject"), flag(r, "deleted"), flag(r, "deletedOnly")
	err := s.read(func(st *state) error {
		sub, err := st.liveSubject(name, deleted || only)
		if err != nil {
			return err
		}
		for _, v := range sub.versions {
			if only && v.Deleted || !only && (deleted || !v.Deleted) {
				out = append(out, v.Version)
			}
		}
		return nil
	})
	return out, err
}

func (s *Server) getVersion(r *http.Request) (any, error) {
	var out subjectSchema
	err := s.read(func(st *state) error {
		v, sc, err := s.versionArgs(r, st)
		if err == nil {
			out = answer(r.PathValue("subject"), v, sc)
		}
		return err
	})
	return out, err
}

func (s *Server) getVersionText(r *http.Request) (any, error) {
	var out rawText
	err := s.read(func(st *state) error {
		_, sc, err := s.versionArgs(r, st)
		if err == nil {
			out = rawText(sc.Text)
		}
		return err
	})
	return out, err
}

// versionArgs resolves /subjects/{subject}/versions/{version} for reading.
func (s *Server) versionArgs(r *http.Request, st *state) (*version, *schema, error) {
	n, err := versionArg(r)
	if err != nil {
		return nil, nil, err
	}
	deleted := flag(r, "deleted")
	sub, err := st.liveSubject(r.PathValue("subject"), deleted)
	if err != nil {
		return nil, nil, err
	}
	v, err := sub.pick(n, deleted)
	if err != nil {
		return nil, nil, err
	}
	return v, st.schemas[v.ID], nil
}

func (s *Server) referencedBy(r *http.Request) (any, error) {
	out := []int{}
	err := s.read(func(st *state) error {
		v, _, err := s.versionArgs(r, st)
		if err != nil {
			return err
		}
		out = st.referrers(r.PathValue("subject"), v.Version)
		return nil
	})
	return out, err
}

// referrers are the ids of live versions that reference subject version n.
func (st *state) referrers(subj string, n int) []int {
	out := []int{}
	for _, sub := range st.subjects {
		for _, v := range sub.live() {
			for _, ref := range st.schemas[v.ID].Refs {
				if ref.Subject == subj && ref.Version == n && !slices.Contains(out, v.ID) {
					out = append(out, v.ID)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func (s *Server) lookup(r *http.Request) (any, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var out subjectSchema
	name, deleted := r.PathValue("subject"), flag(r, "deleted")
	err = s.read(func(st *state) error {
		sub, err := st.liveSubject(name, deleted)
		if err != nil {
			return err
		}
		c, err := candidateOf(body, st)
		if err != nil {
			return err
		}
		for _, v := range slices.Backward(sub.versions) {
			if (deleted || !v.Deleted) && st.schemas[v.ID].key == c.key {
				out = answer(name, v, st.schemas[v.ID])
				return nil
			}
		}
		return errSchemaNotFound("Schema not found")
	})
	return out, err
}

// effectiveMode is the subject's mode, else the global one.
func (st *state) effectiveMode(name string) string {
	if sub, ok := st.subjects[name]; ok && sub.mode != "" {
		return sub.mode
	}
	return or(st.mode, ReadWrite)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// effectiveLevel is the subject's level, else the global one.
func (s *Server) effectiveLevel(st *state, name string) string {
	if sub, ok := st.subjects[name]; ok && sub.compat != "" {
		return sub.compat
	}
	return or(st.compat, s.defLevel)
}

func (s *Server) writable(st *state, name string) error {
	if st.effectiveMode(name) == ReadOnly {
		return errNotPermitted(fmt.Sprintf("Subject %s is in read-only mode", name))
	}
	return nil
}

func (s *Server) register(r *http.Request) (any, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	name := r.PathValue("subject")
	var id int
	err = s.change(func(st *state) error {
		if err := s.writable(st, name); err != nil {
			return err
		}
		c, err := candidateOf(body, st)
		if err != nil {
			return err
		}
		importing := st.effectiveMode(name) == Import
		if (c.body.ID > 0 || c.body.Version > 0) && !importing {
			return errNotPermitted(fmt.Sprintf("Subject %s is not in import mode: a registration cannot choose its id or version", name))
		}
		sub := st.subject(name)
		live := sub.live()
		for _, v := range slices.Backward(live) {
			if st.schemas[v.ID].key == c.key && (c.body.ID <= 0 || c.body.ID == v.ID) {
				id = v.ID
				return errNoChange
			}
		}
		if !importing {
			lvl := s.effectiveLevel(st, name)
			if msgs := s.check(st, lvl, c, live, transitive(lvl)); len(msgs) > 0 {
				return &apiError{409, 409, fmt.Sprintf("Schema being registered is incompatible with an earlier schema for subject %q (%s), details: [%s]", name, lvl, strings.Join(msgs, "; "))}
			}
		}
		// The id: the schema's own if it has one, else the requested
		// one (import), else a new one.
		known, isKnown := st.byKey[c.key]
		switch {
		case c.body.ID > 0:
			if sc, ok := st.schemas[c.body.ID]; ok && sc.key != c.key {
				return &apiError{422, 42207, fmt.Sprintf("Overwrite new schema with id %d is not permitted.", c.body.ID)}
			}
			id = c.body.ID
		case isKnown:
			id = known
		default:
			id = st.nextID
		}
		if _, ok := st.schemas[id]; !ok {
			st.schemas[id] = &schema{ID: id, Text: c.body.Schema, Type: c.typ, Refs: c.body.References, key: c.key}
			if !isKnown {
				st.byKey[c.key] = id
			}
		}
		st.nextID = max(st.nextID, id+1)
		n := 1
		if len(sub.versions) > 0 {
			n = sub.versions[len(sub.versions)-1].Version + 1
		}
		if c.body.Version > 0 {
			if sub.find(c.body.Version) != nil {
				return errNotPermitted(fmt.Sprintf("Version %d of subject %s already exists", c.body.Version, name))
			}
			n = c.body.Version
		}
		sub.versions = append(sub.versions, &version{Version: n, ID: id})
		slices.SortFunc(sub.versions, func(a, b *version) int { return a.Version - b.Version })
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]int{"id": id}, nil
}

// check returns why c is not compatible with the versions at level lvl:
// against the latest one, or all of them when all is set. NONE checks
// nothing.
func (s *Server) check(st *state, lvl string, c *candidate, against []*version, all bool) []string {
	if lvl == None || len(against) == 0 {
		return nil
	}
	if !all {
		against = against[len(against)-1:]
	}
	var msgs []string
	for _, v := range slices.Backward(against) {
		sc := st.schemas[v.ID]
		if strings.HasPrefix(sc.key, "unparsed\x00") {
			continue
		}
		old, err := st.parsed(sc)
		if err != nil {
			continue
		}
		if err := compatible(lvl, c.parsed, old); err != nil {
			msgs = append(msgs, fmt.Sprintf("version %d (id %d): %v", v.Version, v.ID, err))
		}
	}
	return msgs
}

func (s *Server) deleteSubject(r *http.Request) (any, error) {
	name, permanent := r.PathValue("subject"), flag(r, "permanent")
	out := []int{}
	err := s.change(func(st *state) error {
		if err := s.writable(st, name); err != nil {
			return err
		}
		sub, err := st.liveSubject(name, true)
		if err != nil {
			return err
		}
		live := sub.live()
		if !permanent {
			if len(live) == 0 {
				return &apiError{404, 40404, fmt.Sprintf("Subject '%s' was soft deleted.Set permanent=true to delete permanently", name)}
			}
			for _, v := range live {
				v.Deleted = true
				out = append(out, v.Version)
			}
			return nil
		}
		if len(live) > 0 {
			return &apiError{404, 40405, fmt.Sprintf("Subject '%s' was not deleted first before being permanently deleted", name)}
		}
		for _, v := range sub.versions {
			if refs := st.referrers(name, v.Version); len(refs) > 0 {
				return &apiError{422, 42206, fmt.Sprintf("One or more references exist to the schema {subject=%s,version=%d}: ids %v", name, v.Version, refs)}
			}
			out = append(out, v.Version)
		}
		delete(st.subjects, name) // with its config and mode, as Confluent does
		return nil
	})
	return out, err
}

func (s *Server) deleteVersion(r *http.Request) (any, error) {
	name, permanent := r.PathValue("subject"), flag(r, "permanent")
	var out int
	err := s.change(func(st *state) error {
		if err := s.writable(st, name); err != nil {
			return err
		}
		n, err := versionArg(r)
		if err != nil {
			return err
		}
		sub, err := st.liveSubject(name, true)
		if err != nil {
			return err
		}
		// "latest" is the latest live version for a soft delete; a number
		// may name a soft-deleted one (40406 below).
		v, err := sub.pick(n, permanent || n != -1)
		if err != nil {
			return err
		}
		out = v.Version
		if !permanent {
			if v.Deleted {
				return &apiError{404, 40406, fmt.Sprintf("Subject '%s' Version %d was soft deleted.Set permanent=true to delete permanently", name, v.Version)}
			}
			if refs := st.referrers(name, v.Version); len(refs) > 0 {
				return &apiError{422, 42206, fmt.Sprintf("One or more references exist to the schema {subject=%s,version=%d}: ids %v", name, v.Version, refs)}
			}
			v.Deleted = true
			return nil
		}
		if !v.Deleted {
			return &apiError{404, 40407, fmt.Sprintf("Subject '%s' Version %d was not deleted first before being permanently deleted", name, v.Version)}
		}
		if refs := st.referrers(name, v.Version); len(refs) > 0 {
			return &apiError{422, 42206, fmt.Sprintf("One or more references exist to the schema {subject=%s,version=%d}: ids %v", name, v.Version, refs)}
		}
		sub.versions = slices.DeleteFunc(sub.versions, func(x *version) bool { return x == v })
		if sub.empty() {
			delete(st.subjects, name)
		}
		return nil
	})
	return out, err
}

// --- compatibility ---

// result is Confluent's {"is_compatible":...} answer, with "messages"
// (possibly empty) only when verbose.
func result(msgs []string, verbose bool) map[string]any {
	res := map[string]any{"is_compatible": len(msgs) == 0}
	if verbose {
		res["messages"] = append([]string{}, msgs...)
	}
	return res
}

// checkVersion checks against one version (or the latest live one), in the
// direction(s) of the subject's level.
func (s *Server) checkVersion(r *http.Request) (any, error) {
	return s.checkAgainst(r, func(st *state, name, _ string) ([]*version, bool, error) {
		n, err := versionArg(r)
		if err != nil {
			return nil, false, err
		}
		sub, err := st.liveSubject(name, false)
		if err != nil {
			return nil, false, err
		}
		v, err := sub.pick(n, false)
		if err != nil {
			return nil, false, err
		}
		return []*version{v}, false, nil
	})
}

// checkAll checks against the live versions the subject's level asks for
// (a subject without any is compatible with everything, as for Confluent).
func (s *Server) checkAll(r *http.Request) (any, error) {
	return s.checkAgainst(r, func(st *state, name, lvl string) ([]*version, bool, error) {
		var live []*version
		if sub, ok := st.subjects[name]; ok {
			live = sub.live()
		}
		return live, transitive(lvl), nil
	})
}

// checkAgainst answers the verdict on the body's schema against the
// versions against picks (after the body has parsed), at the subject's level.
func (s *Server) checkAgainst(r *http.Request, against func(st *state, name, lvl string) (vs []*version, transitive bool, err error)) (any, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	name := r.PathValue("subject")
	var out map[string]any
	err = s.read(func(st *state) error {
		c, err := candidateOf(body, st)
		if err != nil {
			return err
		}
		lvl := s.effectiveLevel(st, name)
		vs, trans, err := against(st, name, lvl)
		if err != nil {
			return err
		}
		msgs := s.check(st, lvl, c, vs, trans)
		if len(msgs) > 0 {
			msgs = append(msgs, "compatibility: "+lvl)
		}
		out = result(msgs, flag(r, "verbose"))
		return nil
	})
	return out, err
}

// --- config and mode ---

// setting describes one of the two settings that have a global value and
// may be overridden per subject: the compatibility level (/config) and the
// mode (/mode). One get/put/delete implementation serves both.
type setting struct {
	getKey        string                          // answer key of GET and DELETE
	putKey        string                          // answer key of PUT
	own           func(*subject) *string          // the subject's value, "" when unset
	global        func(*state) *string            // the global value, "" when unset
	def           func(*Server) string            // what an unset global value means
	decode        func(io.Reader) (string, error) // reads the PUT body; the error is the answer
	parse         func(string) (string, bool)     // normalises a value; ok false for an unknown one
	invalid       func() error                    // answer to an unknown value
	notConfigured func(name string) error         // GET of a subject without its own value
	deleteUnset   func(name string) error         // DELETE of a subject without its own value
	// permit, when set, may refuse to set the value (for name, "" for global).
	permit func(r *http.Request, st *state, name, value string) error
}

func errNotConfigured(code int, what string) func(string) error {
	return func(name string) error {
		return &apiError{404, code, fmt.Sprintf("Subject '%s' does not have subject-level %s configured", name, what)}
	}
}

var compatSetting = setting{
	getKey: "compatibilityLevel",
	putKey: "compatibility",
	own:    func(sub *subject) *string { return &sub.compat },
	global: func(st *state) *string { return &st.compat },
	def:    func(s *Server) string { return s.defLevel },
	decode: func(r io.Reader) (string, error) {
		var body struct {
			Compatibility string `json:"compatibility"`
		}
		if err := json.NewDecoder(r).Decode(&body); err != nil {
			return "", &apiError{422, 42203, "Invalid compatibility level: the body is not {\"compatibility\": ...}: " + err.Error()}
		}
		return body.Compatibility, nil
	},
	parse:         level,
	invalid:       errInvalidLevel,
	notConfigured: errNotConfigured(40408, "compatibility"),
	deleteUnset:   errSubjectNotFound,
}

var modeSetting = setting{
	getKey: "mode",
	putKey: "mode",
	own:    func(sub *subject) *string { return &sub.mode },
	global: func(st *state) *string { return &st.mode },
	def:    func(*Server) string { return ReadWrite },
	decode: func(r io.Reader) (string, error) {
		var body struct {
			Mode string `json:"mode"`
		}
		if err := json.NewDecoder(r).Decode(&body); err != nil {
			return "", errInvalidMode()
		}
		return body.Mode, nil
	},
	parse:         mode,
	invalid:       errInvalidMode,
	notConfigured: errNotConfigured(40409, "mode"),
	deleteUnset:   errNotConfigured(40409, "mode"),
	// IMPORT needs force=true while the subject (or, globally, any
	// subject) has versions.
	permit: func(r *http.Request, st *state, name, m string) error {
		if m != Import || flag(r, "force") {
			return nil
		}
		for n, sub := range st.subjects {
			if (name == "" || n == name) && len(sub.versions) > 0 {
				return errNotPermitted("Cannot import since found existing subjects (use force=true)")
			}
		}
		return nil
	},
}

func (s *Server) getConfig(r *http.Request) (any, error)    { return s.getSetting(r, compatSetting) }
func (s *Server) putConfig(r *http.Request) (any, error)    { return s.putSetting(r, compatSetting) }
func (s *Server) deleteConfig(r *http.Request) (any, error) { return s.deleteSetting(r, compatSetting) }
func (s *Server) getMode(r *http.Request) (any, error)      { return s.getSetting(r, modeSetting) }
func (s *Server) putMode(r *http.Request) (any, error)      { return s.putSetting(r, modeSetting) }
func (s *Server) deleteMode(r *http.Request) (any, error)   { return s.deleteSetting(r, modeSetting) }

// getSetting answers the subject's own value, else (for the global path or
// with defaultToGlobal) the global one.
func (s *Server) getSetting(r *http.Request, set setting) (any, error) {
	name := r.PathValue("subject")
	var out map[string]string
	err := s.read(func(st *state) error {
		if name != "" {
			if sub, ok := st.subjects[name]; ok && *set.own(sub) != "" {
				out = map[string]string{set.getKey: *set.own(sub)}
				return nil
			}
			if !flag(r, "defaultToGlobal") {
				return set.notConfigured(name)
			}
		}
		out = map[string]string{set.getKey: or(*set.global(st), set.def(s))}
		return nil
	})
	return out, err
}

func (s *Server) putSetting(r *http.Request, set setting) (any, error) {
	name := r.PathValue("subject")
	raw, err := set.decode(r.Body)
	if err != nil {
		return nil, err
	}
	v, ok := set.parse(raw)
	if !ok {
		return nil, set.invalid()
	}
	err = s.change(func(st *state) error {
		if set.permit != nil {
			if err := set.permit(r, st, name, v); err != nil {
				return err
			}
		}
		if name == "" {
			*set.global(st) = v
		} else {
			*set.own(st.subject(name)) = v
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{set.putKey: v}, nil
}

// deleteSetting unsets the value and answers the previous one (for the
// global one, what it meant); a subject left with nothing is forgotten.
func (s *Server) deleteSetting(r *http.Request, set setting) (any, error) {
	name := r.PathValue("subject")
	var prev string
	err := s.change(func(st *state) error {
		if name == "" {
			prev = or(*set.global(st), set.def(s))
			*set.global(st) = ""
			return nil
		}
		sub, ok := st.subjects[name]
		if !ok || *set.own(sub) == "" {
			return set.deleteUnset(name)
		}
		prev, *set.own(sub) = *set.own(sub), ""
		if sub.empty() {
			delete(st.subjects, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{set.getKey: prev}, nil
}
