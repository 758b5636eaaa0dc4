// Package processors is the home of the shop's consumer groups with
// effects: the order saga (stock, payment, confirmation, compensation),
// the card and single-instance SEPA payment callers, PDF invoices, and the
// email sender throttled to a group-wide quota. Each lives in its own
// package below this one (processors/saga, processors/email, …). None is
// built yet: the spine (issue 2) only carries the catalogue and reviews
// slice; the processors arrive with the saga issue.
package processors
