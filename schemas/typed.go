package schemas

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hamba/avro/v2"
)

// The typed path: github.com/hamba/avro/v2 encodes and decodes the Go event
// structs directly, by their `avro` tags, with no generic (goavro native)
// value in between. It is what Version.Encode and Version.Decode use:
//
//   - Encode, current version only: Go struct → Avro binary.
//   - Decode of a record written with the current version: Avro binary → Go
//     struct.
//   - Decode of a record written with an older version that the type
//     declares resolvable (definition.resolvable): hamba's Avro schema
//     resolution, reader = current schema, writer = that version, straight
//     into the current Go struct. TestResolutionReadsOldRecordsAsTheUpcasters
//     holds that this gives what the upcaster chain gives.
//
// Every other older version is decoded by the generic path, DecodeGeneric:
// goavro with the writer's schema, the upcaster chain on the generic value,
// then ToEvent.
//
// The guarantee: the typed path writes exactly the schema's Avro binary
// encoding, byte for byte what goavro (Codec.BinaryFromNative of
// Catalog.Native) writes for the same event, and reads back what goavro's
// path reads. TestTypedPathAndGoavroAgree checks both, both ways, for every
// sample of schemastest.Samples and for edge values (empty and nil arrays,
// empty strings, nil and set optional fields, extreme integers, timestamps
// with milliseconds, non-ASCII text), so the two paths cannot drift.

// typedAPI is hamba configured to write goavro's bytes. By default hamba
// writes each array block with a negative item count followed by the block's
// size in bytes and splits arrays into blocks of 100 items; goavro writes
// one block with a positive count. Both forms are valid Avro and both
// libraries read either, but only this configuration is byte-identical.
var typedAPI = avro.Config{DisableBlockSizeHeader: true, BlockLength: 1 << 30}.Freeze()

var (
	writerPool = sync.Pool{New: func() any { return avro.NewWriter(nil, 512, avro.WithWriterConfig(typedAPI)) }}
	readerPool = sync.Pool{New: func() any { return avro.NewReader(nil, 0, avro.WithReaderConfig(typedAPI)) }}
)

// typedDecode reads one record into a new T with the given (plain or
// resolved) schema and returns the T, as the Event value type.
func typedDecode[T Event](r *avro.Reader, schema avro.Schema) Event {
	p := new(T)
	r.ReadVal(schema, p)
	return *p
}

// ErrNotCurrent is returned by Version.Encode for a version other than its
// type's current one: this build writes only current versions (an older one
// is written from its generic value with Version.Codec).
var ErrNotCurrent = errors.New("not the current version")

// Encode returns a new slice holding prefix followed by the Avro binary
// encoding of ev with this version's schema, written by the typed path
// (hamba on the Go struct, no generic value): byte-identical to
// Codec.BinaryFromNative of Catalog.Native(ev). prefix is only read (the
// Confluent wire header, or nil). v must be the current version of ev's type.
func (v *Version) Encode(prefix []byte, ev Event) ([]byte, error) {
	if v.Type.current != v.Number {
		return nil, fmt.Errorf("encode %s v%d: %w (v%d)", v.Type.Name, v.Number, ErrNotCurrent, v.Type.current)
	}
	if ev.EventType() != v.Type.Name {
		return nil, fmt.Errorf("encode %s: the event is a %s", v.Type.Name, ev.EventType())
	}
	if v.typed == nil {
		// Only a catalogue whose typed path failed to build (LoadFS of a
		// broken history; Load refuses it) gets here: write generically.
		native, err := toNative(ev)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", v.Type.Name, err)
		}
		out := append(make([]byte, 0, len(prefix)+64), prefix...)
		return v.Codec.BinaryFromNative(out, native)
	}
	w := writerPool.Get().(*avro.Writer)
	defer putWriter(w)
	w.Reset(nil)
	w.Error = nil
	_, _ = w.Write(prefix)
	w.WriteVal(v.typed, ev)
	if w.Error != nil {
		return nil, fmt.Errorf("encode %s: %w", v.Type.Name, w.Error)
	}
	buf := w.Buffer()
	out := make([]byte, len(buf))
	copy(out, buf)
	return out, nil
}

// putWriter returns a writer to the pool, unless one huge event grew its
// buffer: the pool would keep that memory for good.
func putWriter(w *avro.Writer) {
	w.Error = nil
	if cap(w.Buffer()) <= 64<<10 {
		writerPool.Put(w)
	}
}

// Encode writes ev with the current version of its type (Version.Encode),
// with no prefix.
func (c *Catalog) Encode(ev Event) (*Version, []byte, error) {
	t, err := c.TypeOf(ev)
	if err != nil {
		return nil, nil, err
	}
	v := t.Current()
	bin, err := v.Encode(nil, ev)
	return v, bin, err
}

// Decode reads one record written with this version's schema (bin holds
// exactly the record, nothing after it) and returns the event of the
// current version, as a value of its Go type. A current-version record, or
// one of an older version that resolves typed, is read by the typed path;
// any other older version by DecodeGeneric. A record the typed path refuses
// is read again by DecodeGeneric, whose verdict stands: so the typed path
// accepts what goavro accepts, beyond hamba's own limits (a string or bytes
// field over 1 MiB, Config.MaxByteSliceSize), and only the cost of a bad
// record changes.
func (v *Version) Decode(bin []byte) (Event, error) {
	if v.typed == nil {
		return v.DecodeGeneric(bin)
	}
	if v.Number == 0 { // a newer writer (Catalog.Newer): resolution only
		return v.DecodeTyped(bin)
	}
	if ev, err := v.DecodeTyped(bin); err == nil {
		return ev, nil
	}
	return v.DecodeGeneric(bin)
}

// DecodeTyped is the typed path of Decode alone, without the fallback to
// DecodeGeneric: for tests and benchmarks that must know which path read a
// record. It fails for a version whose records are not read typed.
func (v *Version) DecodeTyped(bin []byte) (Event, error) {
	if v.typed == nil {
		return nil, fmt.Errorf("decode %s v%d: not read by the typed path", v.Type.Name, v.Number)
	}
	r := readerPool.Get().(*avro.Reader)
	r.Reset(bin)
	ev := v.Type.def.decode(r, v.typed)
	err := r.Error
	if err == nil {
		// At the end of the record, Peek finds nothing and records io.EOF.
		r.Peek()
		if !errors.Is(r.Error, io.EOF) {
			err = errors.New("trailing bytes")
		}
	}
	r.Error = nil
	r.Reset(nil)
	readerPool.Put(r)
	if err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", v.Type.Name, v.Number, err)
	}
	return ev, nil
}

// DecodeGeneric reads one record written with this version's schema through
// the generic path: goavro's codec of the version, the upcaster chain to the
// current version, then ToEvent. It is the reference the typed path is held
// to, and the path of older versions that Avro schema resolution does not
// read as their upcasters do.
func (v *Version) DecodeGeneric(bin []byte) (Event, error) {
	native, rest, err := v.Codec.NativeFromBinary(bin)
	if err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", v.Type.Name, v.Number, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("decode %s v%d: %d trailing bytes", v.Type.Name, v.Number, len(rest))
	}
	m, ok := native.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decode %s v%d: not a record", v.Type.Name, v.Number)
	}
	up, err := v.Type.Upcast(v.Number, m)
	if err != nil {
		return nil, err
	}
	return v.Type.ToEvent(up)
}

// Typed says whether Decode reads this version's records by the typed path
// (the current version, and older versions that resolve typed).
func (v *Version) Typed() bool { return v.typed != nil }

// prepareTyped parses the type's versions with hamba and sets, on the
// current version and on each older version the definition declares
// resolvable, the schema the typed path reads (and, for the current one,
// writes) with. It also checks once that hamba can build the encoder and
// decoder of the Go type, so that a field hamba cannot map fails at load.
func (t *Type) prepareTyped() error {
	err := t.buildTyped()
	if err != nil {
		for _, v := range t.versions {
			v.typed = nil
		}
	}
	t.typedErr = err
	return err
}

func (t *Type) buildTyped() error {
	cur := t.Current()
	reader, err := cur.parse()
	if err != nil {
		return fmt.Errorf("%s v%d: hamba/avro: %w", t.Name, cur.Number, err)
	}
	cur.typed = reader
	for n := range t.def.resolvable {
		old, ok := t.versions[n]
		if !ok || n >= t.current {
			return fmt.Errorf("%s: v%d is declared resolvable but is not an older version", t.Name, n)
		}
		writer, err := old.parse()
		if err != nil {
			return fmt.Errorf("%s v%d: hamba/avro: %w", t.Name, n, err)
		}
		resolved, err := avro.NewSchemaCompatibility().Resolve(reader, writer)
		if err != nil {
			return fmt.Errorf("%s: v%d does not resolve to v%d: %w", t.Name, n, t.current, err)
		}
		old.typed = resolved
	}
	// hamba builds a type's encoder and decoder on first use and reports
	// a Go field it cannot map only then: build them now, on the zero event.
	bin, err := cur.Encode(nil, derefEvent(t.def.newEvent()))
	if err != nil {
		return fmt.Errorf("typed path: %w", err)
	}
	if _, err := cur.DecodeTyped(bin); err != nil {
		return fmt.Errorf("typed path: %w", err)
	}
	return nil
}

// Newer is the version of a writer schema this build does not have, of an
// event type it knows: a version a newer build writes (a rolling upgrade
// may run a newer writer beside this reader). Its records are read by
// Avro schema resolution into this build's current version, as a
// FULL_TRANSITIVE contract promises they can be: added fields are skipped,
// fields removed with a default take it. The version's Number is 0 (not in
// this build's history); it is read, never written. An error says the
// schema is not a record this build knows or does not resolve.
func (c *Catalog) Newer(writerSchema string) (*Version, error) {
	writer, err := avro.ParseWithCache(writerSchema, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownSchema, err)
	}
	named, ok := writer.(avro.NamedSchema)
	if !ok {
		return nil, fmt.Errorf("%w: not a named record", ErrUnknownSchema)
	}
	t, ok := c.Type(named.FullName())
	if !ok {
		return nil, fmt.Errorf("%w: no event type %s", ErrUnknownSchema, named.FullName())
	}
	cur := t.Current()
	if cur.typed == nil {
		return nil, fmt.Errorf("%w: %s is not read by the typed path", ErrUnknownSchema, t.Name)
	}
	resolved, err := avro.NewSchemaCompatibility().Resolve(cur.typed, writer)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: this build's v%d cannot read it: %v", ErrUnknownSchema, t.Name, cur.Number, err)
	}
	return &Version{Type: t, Number: 0, Schema: writerSchema, typed: resolved}, nil
}
