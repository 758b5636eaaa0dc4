package runner

import (
	"context"
	"fmt"
	"time"
)

// RebuildHeld is how many folded documents a runner made by Into holds in
// memory before it writes them.
const RebuildHeld = 50_000

// rebuild is the state of a runner made by Into, the only writer of its
// collection: the documents folded and not yet written, and the ids of
// those written.
type rebuild[V any] struct {
	held    map[string]change[V]
	written map[string]bool
}

func newRebuild[V any]() *rebuild[V] {
	return &rebuild[V]{held: map[string]change[V]{}, written: map[string]bool{}}
}

// lookup is the document a rebuild holds for id, if any (none for a live
// runner).
func (b *rebuild[V]) lookup(id string) (change[V], bool) {
	if b == nil {
		return change[V]{}, false
	}
	c, ok := b.held[id]
	return c, ok
}

// mayExist are the ids whose documents the collection may hold: those the
// rebuild wrote and does not hold.
func (b *rebuild[V]) mayExist(ids []string) []string {
	var out []string
	for _, id := range ids {
		if _, held := b.held[id]; !held && b.written[id] {
			out = append(out, id)
		}
	}
	return out
}

// hold keeps a batch's changes in memory, and writes what is held once it
// exceeds RebuildHeld documents. It returns an error only when ctx ends:
// the changes are held from the start, so the batch must not be applied
// again.
func (b *rebuild[V]) hold(ctx context.Context, r *Runner[V], coll string, changes []change[V]) error {
	for _, c := range changes {
		b.held[c.doc.ID] = c
	}
	if len(b.held) < RebuildHeld {
		return nil
	}
	return b.flush(ctx, r, coll)
}

// flush writes every held document, retrying with backoff until it
// succeeds or ctx ends. After a failed write it reads back the documents
// held: those at their held revision landed and are no longer held, the
// others are written again.
func (b *rebuild[V]) flush(ctx context.Context, r *Runner[V], coll string) error {
	backoff := 50 * time.Millisecond
	for len(b.held) > 0 {
		changes := make([]change[V], 0, len(b.held))
		for _, c := range b.held {
			changes = append(changes, c)
		}
		err := r.write(ctx, coll, changes)
		if err == nil {
			b.landed(changes)
			return nil
		}
		r.log.Warn("rebuild write failed; retrying", "documents", len(changes), "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("rebuild of %s: %w", coll, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		ids := make([]string, len(changes))
		for i, c := range changes {
			ids[i] = c.doc.ID
		}
		stored, err := r.load(ctx, coll, ids)
		if err != nil {
			continue
		}
		var done []change[V]
		for _, c := range changes {
			if doc, ok := stored[c.doc.ID]; ok && doc.Rev == c.doc.Rev {
				done = append(done, c)
			}
		}
		b.landed(done)
	}
	return nil
}

// landed records changes as written.
func (b *rebuild[V]) landed(changes []change[V]) {
	for _, c := range changes {
		delete(b.held, c.doc.ID)
		b.written[c.doc.ID] = true
	}
}

// Flush writes what a runner made by Into holds (see [Runner.Into]),
// retrying until it is written or ctx ends; it does nothing for a live
// runner.
func (r *Runner[V]) Flush(ctx context.Context) error {
	if r.rebuild == nil {
		return nil
	}
	coll, err := r.Target(ctx)
	if err != nil {
		return err
	}
	return r.rebuild.flush(ctx, r, coll)
}
