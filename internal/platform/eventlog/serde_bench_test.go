package eventlog_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"shopstream/schemas"
	"shopstream/schemas/schemastest"
)

// BenchmarkSerdeAvro measures what the wire format adds to the catalogue's
// typed path: Serde.Encode and Serde.Decode (the 5-byte Confluent header,
// the cached schema id both ways, the topic checks, the poison wrapping)
// against Version.Encode / Version.Decode alone and against the goavro codec
// alone, on the events of schemas' BenchmarkAvro, in one run:
//
//	go test -run '^$' -bench SerdeAvro ./internal/platform/eventlog
//
// BenchmarkSerdeAvro/ratio, last, reports serde/codec (issue 14's bound is
// 1.5) and serde/typed, from an interleaved measurement of the same paths
// right after the sub-benchmarks (schemastest.Interleaved).
func BenchmarkSerdeAvro(b *testing.B) {
	ctx := context.Background()
	serde, _ := newSerde(b)
	cat := serde.Catalog()
	events := []struct {
		name string
		ev   schemas.Event
	}{
		{"OrderPlaced", schemas.OrderPlaced{
			OrderID: "0193f5a0-7c1e-7d44-9a3b-51e2c0d8f6a1", CustomerID: "0193f5a0-11aa-7b20-8c4d-2f9e0a7b3c55", PaymentMethod: "card",
			Items: []schemas.OrderLine{
				{ProductID: "0193f5a0-0000-7000-8000-000000000017", Quantity: 1, UnitPriceCents: 8999},
				{ProductID: "0193f5a0-0000-7000-8000-000000000042", Quantity: 2, UnitPriceCents: 2450},
				{ProductID: "0193f5a0-0000-7000-8000-000000000108", Quantity: 3, UnitPriceCents: 799},
			},
			TotalCents: 8999 + 2*2450 + 3*799,
		}},
		{"ReviewAdded", schemas.ReviewAdded{
			ReviewID: "0193f5a0-0000-7000-b000-0000000004d2", ProductID: "0193f5a0-0000-7000-8000-000000000017",
			CustomerID: "0193f5a0-11aa-7b20-8c4d-2f9e0a7b3c55", Rating: 4,
			Comment: "Très bon maillot, taille un peu grand, livraison rapide.",
		}},
	}
	type bench struct {
		event, dir, path string
		op               func() error
	}
	var benches []bench
	for _, e := range events {
		ty, err := cat.TypeOf(e.ev)
		if err != nil {
			b.Fatal(err)
		}
		v := ty.Current()
		_, native, err := cat.Native(e.ev)
		if err != nil {
			b.Fatal(err)
		}
		wire, err := serde.Encode(ctx, ty.Topic, e.ev) // registers the schema: later calls hit the cache
		if err != nil {
			b.Fatal(err)
		}
		bin := wire[5:]
		if got, _, err := serde.Decode(ctx, ty.Topic, wire); err != nil || !reflect.DeepEqual(got, e.ev) {
			b.Fatalf("%s: serde decode: %v %v", e.name, got, err)
		}
		if generic, err := v.Codec.BinaryFromNative(nil, native); err != nil || !bytes.Equal(generic, bin) {
			b.Fatalf("%s: goavro writes %x (%v), the serde %x", e.name, generic, err, bin)
		}
		ev := e.ev
		add := func(dir, path string, op func() error) {
			benches = append(benches, bench{e.name, dir, path, op})
		}
		add("encode", "serde", func() error { _, err := serde.Encode(ctx, ty.Topic, ev); return err })
		add("encode", "typed", func() error { _, err := v.Encode(nil, ev); return err })
		add("encode", "goavro-codec", func() error { _, err := v.Codec.BinaryFromNative(nil, native); return err })
		add("decode", "serde", func() error { _, _, err := serde.Decode(ctx, ty.Topic, wire); return err })
		add("decode", "typed", func() error { _, err := v.Decode(bin); return err })
		add("decode", "goavro-codec", func() error { _, _, err := v.Codec.NativeFromBinary(bin); return err })
	}
	type figure struct{ ns, bytes, allocs float64 }
	measured := map[string]figure{}
	for _, bb := range benches {
		name := bb.event + "/" + bb.dir + "/" + bb.path
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			for b.Loop() {
				if err := bb.op(); err != nil {
					b.Fatal(err)
				}
			}
			runtime.ReadMemStats(&m1)
			n := float64(b.N)
			measured[name] = figure{float64(b.Elapsed().Nanoseconds()) / n, float64(m1.TotalAlloc-m0.TotalAlloc) / n, float64(m1.Mallocs-m0.Mallocs) / n}
		})
	}
	logged := false
	b.Run("ratio", func(b *testing.B) { // called again with growing b.N: it measures and logs once
		if logged {
			b.ReportMetric(0, "ns/op")
			return
		}
		logged = true
		// One interleaved measurement of every path measured above, the
		// fastest of 20 rounds each: see schemas' BenchmarkAvro.
		var ops []func() error
		index := map[string]int{}
		for _, bb := range benches {
			name := bb.event + "/" + bb.dir + "/" + bb.path
			if _, ok := measured[name]; ok {
				index[name] = len(ops)
				ops = append(ops, bb.op)
			}
		}
		figs, err := schemastest.Interleaved(ops, 20, 5*time.Millisecond)
		if err != nil {
			b.Fatal(err)
		}
		fig := func(name string) (schemastest.Figure, bool) {
			i, ok := index[name]
			if !ok {
				return schemastest.Figure{}, false
			}
			return figs[i], true
		}
		var lines []string
		for _, bb := range benches {
			if bb.path != "serde" {
				continue
			}
			pre := bb.event + "/" + bb.dir + "/"
			s, oks := fig(pre + "serde")
			t, okt := fig(pre + "typed")
			c, okc := fig(pre + "goavro-codec")
			if !oks || !okt || !okc {
				continue
			}
			metric := bb.event + "-" + bb.dir
			b.ReportMetric(s.Ns/c.Ns, metric+"-serde/codec")
			b.ReportMetric(s.Ns/t.Ns, metric+"-serde/typed")
			lines = append(lines, fmt.Sprintf("%-11s %s: serde %5.0f ns %4.0f B %2.0f allocs | typed %5.0f ns %4.0f B %2.0f allocs | goavro codec alone %5.0f ns %4.0f B %2.0f allocs; serde/codec %.2fx, serde/typed %.2fx",
				bb.event, bb.dir, s.Ns, s.Bytes, s.Allocs, t.Ns, t.Bytes, t.Allocs, c.Ns, c.Bytes, c.Allocs, s.Ns/c.Ns, s.Ns/t.Ns))
		}
		if len(lines) == 0 {
			b.Skip("no set of serde, typed and goavro-codec figures measured in this run")
		}
		b.ReportMetric(0, "ns/op")
		b.Logf("Serde Avro, this run, this machine, per operation (fastest of 20 interleaved rounds):\n%s", strings.Join(lines, "\n"))
	})
}
