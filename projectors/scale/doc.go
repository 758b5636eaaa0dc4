// Package scale holds the read side's scale benchmark (scale_test.go): what
// the query routes' look-ups, the projector and bulk upserts cost at 1k,
// 10k and 100k documents in the embedded store. It has no code of its own.
package scale
