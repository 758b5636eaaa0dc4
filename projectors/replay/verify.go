package replay

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/projectors/runner"
)

// Difference is a document that is not the same in the live read model
// and in the replay of the log. A nil side has no such document.
type Difference struct {
	ID            string
	Fields        []string // the top-level fields that differ, sorted
	Live, Rebuilt bson.M
}

// diff lists the top-level fields whose values differ between a and b.
func diff(a, b bson.M) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || !reflect.DeepEqual(v, w) {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Verification says what Verify found.
type Verification struct {
	Report
	Live        string // the live collection compared
	Compared    int64  // documents compared (in either collection)
	Differences int64
	Examples    []Difference // the first few differences
	Rounds      int          // comparisons made (the live side may lag)
}

// MaxExamples is how many differences a Verification shows.
const MaxExamples = 5

// verifyRounds bounds the comparisons: a difference is reported only if it
// is still there after the scratch collection and the live projector have
// both caught up again, so that a live projector busy with new events is
// not taken for a wrong one.
const verifyRounds = 4

// LiveWait bounds how long Verify waits for the live projector's group to
// reach the offsets the scratch collection was built to.
var LiveWait = 30 * time.Second

// Verify rebuilds p's read model into a scratch collection and compares it
// document by document (all fields but the revision) with the collection
// readers use, after waiting for the live projector's group to have
// committed at least as far as the rebuild read. The scratch collection is
// dropped afterwards.
func Verify[V any](ctx context.Context, p runner.Projection[V], cfg Config) (Verification, error) {
	began := time.Now()
	cfg = cfg.withDefaults()
	live, err := runner.NewAliases(cfg.Store.Database()).Resolve(ctx, p.Collection())
	if err != nil {
		return Verification{}, err
	}
	scratch := fmt.Sprintf("%s_verify%d", p.Collection(), time.Now().UnixMilli())
	b, err := newBuilder(ctx, p, cfg, scratch)
	if err != nil {
		return Verification{}, err
	}
	defer b.close()
	defer func() { _ = cfg.Store.Collection(scratch).Drop(context.WithoutCancel(ctx)) }()
	var v Verification
	for v.Rounds < verifyRounds {
		b.phase = PhaseRebuilding
		ends, err := b.heads(ctx)
		if err != nil {
			return v, err
		}
		if err := b.catchUp(ctx, ends); err != nil {
			return v, err
		}
		if err := waitForGroup(ctx, b.adm, p.Group(), ends); err != nil {
			return v, err
		}
		v.Rounds++
		b.phase = PhaseComparing
		b.show(0)
		if v.Compared, v.Differences, v.Examples, err = compare(ctx, cfg.Store.Collection(live), cfg.Store.Collection(scratch)); err != nil {
			return v, err
		}
		if v.Differences == 0 {
			break
		}
	}
	b.phase = PhaseDone
	b.show(0)
	b.finish()
	v.Report = Report{Projection: p.Name, From: live, To: scratch, Events: b.events, Poison: b.r.Poisoned(), Documents: v.Compared, Elapsed: time.Since(began)}
	v.Live = live
	return v, nil
}

// waitForGroup waits until group has committed, on every partition, at
// least the offsets ends.
func waitForGroup(ctx context.Context, adm *kadm.Client, group string, ends kadm.ListedOffsets) error {
	deadline := time.Now().Add(LiveWait)
	for {
		committed, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			err = committed.Error()
		}
		if err != nil {
			return fmt.Errorf("committed offsets of %s: %w", group, err)
		}
		var behind int64
		ends.Each(func(o kadm.ListedOffset) {
			at := int64(0)
			if c, ok := committed.Lookup(o.Topic, o.Partition); ok {
				at = c.At
			}
			if d := o.Offset - at; d > 0 {
				behind += d
			}
		})
		if behind == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the live projector (group %s) is still %d records behind the rebuild after %s: is it running?", group, behind, LiveWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// compare walks both collections in _id order and counts the documents
// that differ (revision aside) or exist on one side only.
func compare(ctx context.Context, live, rebuilt *mongo.Collection) (compared, differences int64, examples []Difference, err error) {
	byID := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}})
	lc, err := live.Find(ctx, bson.D{}, byID)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("read %s: %w", live.Name(), err)
	}
	defer lc.Close(ctx)
	rc, err := rebuilt.Find(ctx, bson.D{}, byID)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("read %s: %w", rebuilt.Name(), err)
	}
	defer rc.Close(ctx)
	l, r := next(ctx, lc), next(ctx, rc)
	for l != nil || r != nil {
		compared++
		var d *Difference
		switch {
		case r == nil || (l != nil && id(l) < id(r)):
			d, l = &Difference{ID: id(l), Live: l}, next(ctx, lc)
		case l == nil || id(r) < id(l):
			d, r = &Difference{ID: id(r), Rebuilt: r}, next(ctx, rc)
		default:
			if fields := diff(l, r); len(fields) > 0 {
				d = &Difference{ID: id(l), Fields: fields, Live: l, Rebuilt: r}
			}
			l, r = next(ctx, lc), next(ctx, rc)
		}
		if d != nil {
			differences++
			if len(examples) < MaxExamples {
				examples = append(examples, *d)
			}
		}
	}
	if err := lc.Err(); err != nil {
		return 0, 0, nil, err
	}
	return compared, differences, examples, rc.Err()
}

// next decodes a cursor's next document without its revision, or nil at
// the end.
func next(ctx context.Context, c *mongo.Cursor) bson.M {
	if !c.Next(ctx) {
		return nil
	}
	var m bson.M
	if err := c.Decode(&m); err != nil {
		return bson.M{"_id": fmt.Sprint(c.Current.Lookup("_id")), "decode_error": err.Error()}
	}
	delete(m, "_rev")
	return normalize(m).(bson.M)
}

// normalize turns every embedded document into a bson.M, so that two
// documents compare equal whatever the order of their fields (a Go map,
// such as the folds' applied versions, is encoded in any order).
func normalize(v any) any {
	switch x := v.(type) {
	case bson.D:
		m := make(bson.M, len(x))
		for _, e := range x {
			m[e.Key] = normalize(e.Value)
		}
		return m
	case bson.M:
		for k, e := range x {
			x[k] = normalize(e)
		}
		return x
	case bson.A:
		for i, e := range x {
			x[i] = normalize(e)
		}
		return x
	}
	return v
}

func id(m bson.M) string { s, _ := m["_id"].(string); return s }
