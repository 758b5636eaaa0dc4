package runner

import "sync"

// RecentDocs bounds how many documents a live runner remembers as it last
// wrote or read them (see [Runner.Apply]): between RecentDocs/2 and
// RecentDocs, the most recent.
const RecentDocs = 10_000

// recent is a live runner's memory of the documents of one collection as
// it last wrote or read them, so that the next batch that changes one does
// not look it up. It is a guess, checked by the write: a remembered
// document that has moved on since (another runner wrote it during a
// rebalance, a write failed half-way) fails its revision filter, and the
// batch is folded again from documents looked up. It is safe for
// concurrent use.
type recent[V any] struct {
	mu         sync.Mutex
	coll       string                 // the collection remembered; another one empties the memory
	cur, older map[string]Document[V] // two generations: cur fills up to RecentDocs/2, then becomes older
}

// get returns what is remembered of the ids in coll.
func (m *recent[V]) get(coll string, ids []string) map[string]Document[V] {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.coll != coll {
		return nil
	}
	var out map[string]Document[V]
	for _, id := range ids {
		d, ok := m.cur[id]
		if !ok {
			d, ok = m.older[id]
		}
		if ok {
			if out == nil {
				out = map[string]Document[V]{}
			}
			out[id] = d
		}
	}
	return out
}

// put remembers docs as stored in coll, keeping a later revision already
// remembered.
func (m *recent[V]) put(coll string, docs []Document[V]) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.coll != coll {
		m.coll, m.cur, m.older = coll, nil, nil
	}
	for _, d := range docs {
		known, ok := m.cur[d.ID]
		if !ok {
			known, ok = m.older[d.ID]
		}
		if ok && known.Rev > d.Rev {
			continue
		}
		if len(m.cur) >= RecentDocs/2 {
			m.cur, m.older = nil, m.cur
		}
		if m.cur == nil {
			m.cur = make(map[string]Document[V], RecentDocs/2)
		}
		m.cur[d.ID] = d
	}
}

// forget drops ids from the memory.
func (m *recent[V]) forget(ids []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		delete(m.cur, id)
		delete(m.older, id)
	}
}
