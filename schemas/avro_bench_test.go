package schemas_test

import (
	"bytes"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"shopstream/schemas"
	"shopstream/schemas/schemastest"
)

// The Avro benchmarks compare, in one run on one machine, the shop's Avro
// path with the raw goavro codec it is built on and with
// github.com/hamba/avro/v2, which encodes Go structs directly by their
// `avro` tags (the event structs carry them already):
//
//	go test -run '^$' -bench Avro ./schemas
//
// Per event (OrderPlaced with 3 order lines: nesting and an array;
// ReviewAdded: five flat fields) and direction, three sub-benchmarks:
//
//   - goavro: what the shop does with every event (eventlog.Serde minus the
//     5-byte wire header and the cached registry id): encode is
//     Catalog.Native (Go struct → goavro native map, by reflection) then
//     Version.Codec.BinaryFromNative; decode is Codec.NativeFromBinary, then
//     Type.Upcast (no step for a current version) and Type.ToEvent (native
//     map → Go struct).
//   - goavro-codec: the goavro codec alone, on a native map built once
//     (encode) or into a native map (decode): goavro's own share of the
//     goavro line.
//   - hamba: Marshal / Unmarshal of the same Go struct with a schema parsed
//     from the same .avsc text, with hambaAPI (below).
//
// BenchmarkAvro/ratio, last, reports goavro/hamba (the shop's path over
// hamba's) and codec/hamba from the figures the sub-benchmarks before it
// measured in the same run. (testing.Benchmark cannot measure them from
// inside a benchmark: the testing package holds a lock while a benchmark
// function runs, which testing.Benchmark waits for, so it deadlocks.)
// TestHambaAndGoavroAgree checks that both libraries write the same bytes
// for every sample event, and read them back to the same value.

// hambaAPI is hamba configured to write the bytes goavro writes. By default
// hamba writes each array block with a negative item count followed by the
// block's size in bytes (allowed by the Avro spec, so that a reader can skip
// the block), and splits arrays into blocks of 100 items; goavro writes one
// block with a positive count. Both read either form (the test checks), but
// only this configuration gives byte-identical records.
var hambaAPI = avro.Config{DisableBlockSizeHeader: true, BlockLength: 1 << 30}.Freeze()

// avroCase is one event of the benchmarks.
type avroCase struct {
	name string
	ev   schemas.Event
	zero func() any // a new empty value of ev's type, for hamba to decode into
}

func avroCases() []avroCase {
	return []avroCase{
		{"OrderPlaced", schemas.OrderPlaced{
			OrderID: "0193f5a0-7c1e-7d44-9a3b-51e2c0d8f6a1", CustomerID: "0193f5a0-11aa-7b20-8c4d-2f9e0a7b3c55", PaymentMethod: "card",
			Items: []schemas.OrderLine{
				{ProductID: "0193f5a0-0000-7000-8000-000000000017", Quantity: 1, UnitPriceCents: 8999},
				{ProductID: "0193f5a0-0000-7000-8000-000000000042", Quantity: 2, UnitPriceCents: 2450},
				{ProductID: "0193f5a0-0000-7000-8000-000000000108", Quantity: 3, UnitPriceCents: 799},
			},
			TotalCents: 8999 + 2*2450 + 3*799,
		}, func() any { return new(schemas.OrderPlaced) }},
		{"ReviewAdded", schemas.ReviewAdded{
			ReviewID: "0193f5a0-0000-7000-b000-0000000004d2", ProductID: "0193f5a0-0000-7000-8000-000000000017",
			CustomerID: "0193f5a0-11aa-7b20-8c4d-2f9e0a7b3c55", Rating: 4,
			Comment: "Très bon maillot, taille un peu grand, livraison rapide.",
		}, func() any { return new(schemas.ReviewAdded) }},
	}
}

// shopEncode is the shop's encoding of an event (eventlog.Serde.Encode
// without the wire header): Go struct → native map → goavro binary.
func shopEncode(cat *schemas.Catalog, ev schemas.Event) ([]byte, error) {
	v, native, err := cat.Native(ev)
	if err != nil {
		return nil, err
	}
	return v.Codec.BinaryFromNative(nil, native)
}

// shopDecode is the shop's decoding of a value written with version v
// (eventlog.Serde.Decode without the wire header): goavro binary → native
// map → upcast to the current version → Go struct.
func shopDecode(v *schemas.Version, bin []byte) (schemas.Event, error) {
	native, rest, err := v.Codec.NativeFromBinary(bin)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%d trailing bytes", len(rest))
	}
	up, err := v.Type.Upcast(v.Number, native.(map[string]any))
	if err != nil {
		return nil, err
	}
	return v.Type.ToEvent(up)
}

// hambaSchema parses the .avsc text of v with hamba, in a cache of its own.
func hambaSchema(tb testing.TB, v *schemas.Version) avro.Schema {
	tb.Helper()
	s, err := avro.ParseWithCache(v.Schema, "", &avro.SchemaCache{})
	if err != nil {
		tb.Fatalf("hamba: parse %s v%d: %v", v.Type.Name, v.Number, err)
	}
	return s
}

// hambaDecode reads bin into a new value of ev's Go type.
func hambaDecode(schema avro.Schema, bin []byte, ev schemas.Event) (schemas.Event, error) {
	p := reflect.New(reflect.TypeOf(ev))
	if err := hambaAPI.Unmarshal(schema, bin, p.Interface()); err != nil {
		return nil, err
	}
	return p.Elem().Interface().(schemas.Event), nil
}

func TestHambaAndGoavroAgree(t *testing.T) {
	cat := load(t)
	events := schemastest.Samples()
	for _, c := range avroCases() {
		events = append(events, c.ev)
	}
	for _, ev := range events {
		v, native, err := cat.Native(ev)
		if err != nil {
			t.Fatalf("%T: %v", ev, err)
		}
		ours, err := v.Codec.BinaryFromNative(nil, native)
		if err != nil {
			t.Fatalf("%s: goavro encode: %v", v.Type.Name, err)
		}
		schema := hambaSchema(t, v)
		theirs, err := hambaAPI.Marshal(schema, ev)
		if err != nil {
			t.Errorf("%s: hamba encode: %v", v.Type.Name, err)
			continue
		}
		// hamba's default configuration writes other (valid) bytes for
		// arrays: goavro must still read them.
		if def, err := avro.Marshal(schema, ev); err != nil {
			t.Errorf("%s: hamba encode, default configuration: %v", v.Type.Name, err)
		} else if back, err := shopDecode(v, def); err != nil {
			t.Errorf("%s: goavro decode of hamba's default bytes %x: %v", v.Type.Name, def, err)
		} else if !reflect.DeepEqual(back, ev) {
			t.Errorf("%s: goavro reads hamba's default bytes as\n%#v\nwant %#v", v.Type.Name, back, ev)
		}
		if !bytes.Equal(ours, theirs) {
			t.Errorf("%s: the libraries write different bytes for %+v\ngoavro %x\nhamba  %x", v.Type.Name, ev, ours, theirs)
		}
		back, err := hambaDecode(schema, ours, ev)
		if err != nil {
			t.Errorf("%s: hamba decode of goavro's bytes: %v", v.Type.Name, err)
		} else if !reflect.DeepEqual(back, ev) {
			t.Errorf("%s: hamba reads goavro's bytes as\n%#v\nwant %#v", v.Type.Name, back, ev)
		}
		if back, err := shopDecode(v, theirs); err != nil {
			t.Errorf("%s: goavro decode of hamba's bytes: %v", v.Type.Name, err)
		} else if !reflect.DeepEqual(back, ev) {
			t.Errorf("%s: goavro reads hamba's bytes as\n%#v\nwant %#v", v.Type.Name, back, ev)
		}
	}
}

// avroBench is one sub-benchmark: a library doing one direction for one
// event.
type avroBench struct {
	event, dir, lib string
	op              func() error
}

// avroBenches builds every sub-benchmark, after checking once that each
// function does what it says (so that a broken one fails, not measures).
func avroBenches(b *testing.B) (benches []avroBench, size map[string]int) {
	b.Helper()
	cat, err := schemas.Load()
	if err != nil {
		b.Fatalf("load catalog: %v", err)
	}
	size = map[string]int{}
	for _, c := range avroCases() {
		v, native, err := cat.Native(c.ev)
		if err != nil {
			b.Fatal(err)
		}
		schema := hambaSchema(b, v)
		bin, err := shopEncode(cat, c.ev)
		if err != nil {
			b.Fatal(err)
		}
		if h, err := hambaAPI.Marshal(schema, c.ev); err != nil || !bytes.Equal(h, bin) {
			b.Fatalf("%s: hamba writes %x (%v), goavro %x", c.name, h, err, bin)
		}
		if got, err := shopDecode(v, bin); err != nil || !reflect.DeepEqual(got, c.ev) {
			b.Fatalf("%s: shop decode: %v %v", c.name, got, err)
		}
		if got, err := hambaDecode(schema, bin, c.ev); err != nil || !reflect.DeepEqual(got, c.ev) {
			b.Fatalf("%s: hamba decode: %v %v", c.name, got, err)
		}
		size[c.name] = len(bin)
		add := func(dir, lib string, op func() error) {
			benches = append(benches, avroBench{event: c.name, dir: dir, lib: lib, op: op})
		}
		ev := c.ev
		add("encode", "goavro", func() error { _, err := shopEncode(cat, ev); return err })
		add("encode", "goavro-codec", func() error { _, err := v.Codec.BinaryFromNative(nil, native); return err })
		add("encode", "hamba", func() error { _, err := hambaAPI.Marshal(schema, ev); return err })
		add("decode", "goavro", func() error { _, err := shopDecode(v, bin); return err })
		add("decode", "goavro-codec", func() error { _, _, err := v.Codec.NativeFromBinary(bin); return err })
		// A new value per record, as the shop's decode returns one.
		add("decode", "hamba", func() error { return hambaAPI.Unmarshal(schema, bin, c.zero()) })
	}
	return benches, size
}

// avroFigure is what one sub-benchmark measured.
type avroFigure struct{ ns, allocs float64 }

// BenchmarkAvro prints ns/op and allocs/op per library side by side,
// BenchmarkAvro/<event>/<encode|decode>/<goavro|goavro-codec|hamba>, then
// BenchmarkAvro/ratio: the ratios of those figures.
func BenchmarkAvro(b *testing.B) {
	benches, size := avroBenches(b)
	measured := map[string]avroFigure{}
	for _, ab := range benches {
		name := ab.event + "/" + ab.dir + "/" + ab.lib
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			for b.Loop() { // the function runs once; b.Loop sets b.N
				if err := ab.op(); err != nil {
					b.Fatal(err)
				}
			}
			runtime.ReadMemStats(&m1)
			b.ReportMetric(float64(size[ab.event]), "avro-bytes")
			measured[name] = avroFigure{ns: float64(b.Elapsed().Nanoseconds()) / float64(b.N), allocs: float64(m1.Mallocs-m0.Mallocs) / float64(b.N)}
		})
	}
	logged := false
	b.Run("ratio", func(b *testing.B) { // called again with growing b.N: it only reports
		var lines []string
		for _, ab := range benches {
			if ab.lib != "hamba" {
				continue
			}
			pre := ab.event + "/" + ab.dir + "/"
			g, okg := measured[pre+"goavro"]
			c, okc := measured[pre+"goavro-codec"]
			h, okh := measured[pre+"hamba"]
			if !okg || !okc || !okh {
				continue // filtered out by -bench
			}
			metric := ab.event + "-" + ab.dir
			b.ReportMetric(g.ns/h.ns, metric+"-goavro/hamba")
			b.ReportMetric(c.ns/h.ns, metric+"-codec/hamba")
			lines = append(lines, fmt.Sprintf("%-11s %s: goavro (shop path) %6.0f ns/op %3.0f allocs, goavro codec alone %6.0f ns/op %3.0f allocs, hamba %6.0f ns/op %3.0f allocs; goavro/hamba %.1fx, codec/hamba %.1fx",
				ab.event, ab.dir, g.ns, g.allocs, c.ns, c.allocs, h.ns, h.allocs, g.ns/h.ns, c.ns/h.ns))
		}
		if len(lines) == 0 {
			b.Skip("no pair of goavro, goavro-codec and hamba figures measured in this run (-bench filtered them out)")
		}
		b.ReportMetric(0, "ns/op") // computed, not timed
		if !logged {
			b.Logf("Avro, this run, this machine:\n%s", strings.Join(lines, "\n"))
			logged = true
		}
	})
}
