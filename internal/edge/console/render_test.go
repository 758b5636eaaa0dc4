package console

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"shopstream/internal/platform/lag"
)

// bigSample is a pipeline of 50 topics of 12 partitions and 20 groups
// each reading 5 of them, with 5 minutes of lag history.
func bigSample() Sample {
	smp := Sample{At: time.Now(), Outbox: 12, OutboxKnown: true}
	for i := range 50 {
		smp.Topics = append(smp.Topics, TopicStat{Name: fmt.Sprintf("shop.topic%02d.v1", i), Partitions: 12, End: int64(i) * 1000, Rate: 12.5})
	}
	for g := range 20 {
		gs := GroupStat{Group: lag.Group{Group: fmt.Sprintf("shop.processor.g%02d.v1", g), State: "Stable", Members: 3, Lag: int64(g)}}
		for t := range 5 {
			for p := range 12 {
				gs.Partitions = append(gs.Partitions, lag.Partition{Topic: fmt.Sprintf("shop.topic%02d.v1", (g+t)%50), Partition: int32(p), Committed: 100, End: 101, Lag: 1})
			}
		}
		for h := range historyLen {
			gs.History = append(gs.History, int64(h%17))
		}
		smp.Groups = append(smp.Groups, gs)
	}
	return smp
}

// The pipeline's live part, at 50 topics and 20 groups: every topic and
// group is on it, with every partition's lag.
func TestPipelineFragmentAtScale(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var buf bytes.Buffer
	if err := c.tmpl.ExecuteTemplate(&buf, "pipeline-live", bigSample()); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	if n := strings.Count(html, "data-topic="); n != 50 {
		t.Errorf("%d topics on the page, want 50", n)
	}
	if n := strings.Count(html, "data-group="); n != 20 {
		t.Errorf("%d groups on the page, want 20", n)
	}
	if n := strings.Count(html, "<polyline"); n != 20 {
		t.Errorf("%d lag charts, want 20", n)
	}
	t.Logf("the pipeline's fragment at 50 topics × 12 partitions and 20 groups: %d KiB", len(html)/1024)
}

// BenchmarkPipelineFragment renders the pipeline's live part at 50 topics
// and 20 groups, what the server does once a sample per open page.
func BenchmarkPipelineFragment(b *testing.B) {
	c, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	smp := bigSample()
	var size int
	b.ReportAllocs()
	for b.Loop() {
		var buf bytes.Buffer
		if err := c.tmpl.ExecuteTemplate(&buf, "pipeline-live", smp); err != nil {
			b.Fatal(err)
		}
		size = buf.Len()
	}
	b.ReportMetric(float64(size)/1024, "KiB/fragment")
}
