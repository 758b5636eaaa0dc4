package invariants

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"shopstream/internal/devinfra/embedded/psp"
	"shopstream/internal/devinfra/embedded/smtpd"
	"shopstream/internal/tools/loadtest/report"
	"shopstream/projectors/replay"
	"shopstream/schemas"
)

// MaxViolations is how many offenders an invariant names.
const MaxViolations = 10

// The invariants, in order.
var names = [...]struct{ id, name string }{
	{"I1", "no accepted command lost"},
	{"I2", "at most one charge per order"},
	{"I3", "at most one invoice email per order"},
	{"I4", "read models equal a replay of the log"},
	{"I5", "stock never below zero, no confirmed order without reserved stock"},
	{"I6", "every order ends in a terminal state"},
}

// offenders collects violations; the invariant shows the first
// MaxViolations in sorted order, so that a report is stable.
type offenders []string

func (o *offenders) add(format string, args ...any) { *o = append(*o, fmt.Sprintf(format, args...)) }

// invariant builds invariant i (1-based) from what its check found.
func invariant(i int, checked int, found offenders, detail string) report.Invariant {
	inv := report.Invariant{ID: names[i-1].id, Name: names[i-1].name, Holds: len(found) == 0, Checked: checked, Detail: oneLine(detail)}
	if len(found) > 0 {
		slices.Sort(found)
		inv.Violations = slices.Clip(found[:min(len(found), MaxViolations)])
		for j, v := range inv.Violations {
			inv.Violations[j] = oneLine(v)
		}
	}
	return inv
}

// cannot is invariant i failed because its check could not run.
func cannot(i int, why string) report.Invariant {
	return report.Invariant{ID: names[i-1].id, Name: names[i-1].name, Detail: oneLine("not checked: " + why)}
}

// oneLine joins the lines of s (an error from a driver may hold several).
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// plural is "1 order", "2 orders".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// checkLost is I1: every accepted command has its event in the log, and
// every (customer, product) pair has at least as many ItemAddedToCart
// events as accepted POST /carts/items.
func checkLost(ix *Index, acc Accepted) report.Invariant {
	var found offenders
	lost := 0
	missing := func(kind string, ids []string, has map[string]bool, event, topic string) {
		for _, id := range ids {
			if !has[id] {
				lost++
				found.add("%s %s: no %s in %s", kind, id, event, topic)
			}
		}
	}
	missing("customer", acc.Customers, ix.Customers, "CustomerSignedUp", schemas.TopicCustomers)
	missing("product", acc.Products, ix.Products, "ProductRegistered", schemas.TopicProducts)
	missing("review", acc.Reviews, ix.Reviews, "ReviewAdded", schemas.TopicReviews)
	placed := make(map[string]bool, len(ix.Placed))
	for id := range ix.Placed {
		placed[id] = true
	}
	missing("order", acc.Orders, placed, "OrderPlaced", schemas.TopicOrders)
	adds := 0
	for pair, n := range acc.CartAdds {
		adds += n
		if got := ix.CartAdds[pair]; got < n {
			lost += n - got
			found.add("cart add (customer %s, product %s): %d accepted, %d ItemAddedToCart in %s", pair[0], pair[1], n, got, schemas.TopicCarts)
		}
	}
	checked := len(acc.Customers) + len(acc.Products) + len(acc.Reviews) + len(acc.Orders) + adds
	detail := fmt.Sprintf("%s (%s, %s, %s, %s, %s) against %s of the log",
		plural(checked, "accepted command"), plural(len(acc.Customers), "customer"), plural(len(acc.Products), "product"),
		plural(len(acc.Reviews), "review"), plural(len(acc.Orders), "order"), plural(adds, "cart add"), plural(ix.Events, "event"))
	if lost == 0 {
		detail += ": every one has its event"
	} else {
		detail += fmt.Sprintf(": %d without their event", lost)
	}
	if ix.Poison > 0 {
		detail += fmt.Sprintf("; %d records could not be decoded (first: %s)", ix.Poison, ix.PoisonExamples[0])
	}
	return invariant(1, checked, found, detail)
}

// Payment methods, as PaymentSucceeded and the simulators name them.
const (
	methodCard = "card"
	methodSepa = "sepa"
)

// checkCharges is I2: no order has more than one succeeded charge. listed
// holds the charges of each method whose simulator was listed (GET
// /charges); the succeeded payments of a method not in listed are counted
// from the PaymentSucceeded events of the log instead (ix must then be
// non-nil).
func checkCharges(ix *Index, listed map[string][]psp.Charge) report.Invariant {
	type charge struct{ method, ref string }
	per := map[string][]charge{}
	var sources []string
	for _, method := range []string{methodCard, methodSepa} {
		charges, ok := listed[method]
		if ok {
			sources = append(sources, simulatorName(method)+" GET /charges")
			for _, c := range charges {
				if c.Status == psp.StatusSucceeded {
					per[c.OrderID] = append(per[c.OrderID], charge{method, c.ChargeID})
				}
			}
			continue
		}
		sources = append(sources, "PaymentSucceeded events for "+method+" (its "+simulatorName(method)+" is not a simulator)")
		for _, id := range slices.Sorted(maps.Keys(ix.Paid)) {
			for _, p := range ix.Paid[id] {
				if p.Method == method {
					per[id] = append(per[id], charge{method, p.ProviderReference})
				}
			}
		}
	}
	var found offenders
	succeeded := 0
	for id, cs := range per {
		succeeded += len(cs)
		if len(cs) > 1 {
			refs := make([]string, len(cs))
			for i, c := range cs {
				refs[i] = c.method + " " + c.ref
			}
			found.add("order %s: charged %d times (%s)", id, len(cs), strings.Join(refs, ", "))
		}
	}
	detail := fmt.Sprintf("%s over %s, from %s", plural(succeeded, "succeeded charge"), plural(len(per), "order"), strings.Join(sources, " and "))
	if len(found) == 0 {
		detail += ": none charged twice"
	} else {
		detail += fmt.Sprintf(": %s charged more than once", plural(len(found), "order"))
	}
	return invariant(2, len(per), found, detail)
}

func simulatorName(method string) string {
	if method == methodSepa {
		return "SEPA bank"
	}
	return "card PSP"
}

// The invoice email's Message-ID is "<invoice-<order id>@shopstream>"
// (processors/email.MessageID); its PDF is "invoice-<order id>.pdf".
const (
	invoicePrefix    = "invoice-"
	messageIDDomain  = "@shopstream"
	invoiceExtension = ".pdf"
)

// orderOfMail finds the order an invoice email is for: by its Message-ID,
// else by its PDF's file name; "" when it is not an invoice email.
func orderOfMail(m smtpd.Mail) string {
	id := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(m.MessageID), "<"), ">")
	if o, ok := strings.CutPrefix(id, invoicePrefix); ok {
		if o, ok = strings.CutSuffix(o, messageIDDomain); ok && o != "" {
			return o
		}
	}
	for _, a := range m.Attachments {
		if o, ok := strings.CutPrefix(a.Filename, invoicePrefix); ok {
			if o, ok = strings.CutSuffix(o, invoiceExtension); ok && o != "" {
				return o
			}
		}
	}
	return ""
}

// checkEmails is I3: no order got more than one invoice email. With a
// mailbox (mailDir not empty) it counts the messages in it per order;
// without one it counts the EmailSent events of the log per order. ix may
// be nil when a mailbox is given and the log could not be read.
//
// crashResends orders may have one email delivered twice under one
// Message-ID (a sender killed between the relay's 250 and its record):
// they are reported, and fail only beyond that number; two different
// emails for one order always fail.
func checkEmails(ix *Index, mailDir string, mails []smtpd.Mail, crashResends int) report.Invariant {
	var found offenders
	if mailDir == "" {
		for id, n := range ix.EmailsSent {
			if n > 1 {
				found.add("order %s: %d EmailSent events", id, n)
			}
		}
		detail := fmt.Sprintf("no mailbox (a real SMTP relay): EmailSent events counted per order instead: %s emailed", plural(len(ix.EmailsSent), "order"))
		if len(found) == 0 {
			detail += ", none twice"
		} else {
			detail += fmt.Sprintf(", %d more than once", len(found))
		}
		return invariant(3, len(ix.EmailsSent), found, detail)
	}
	per := map[string][]smtpd.Mail{}
	other := 0
	for _, m := range mails {
		if o := orderOfMail(m); o != "" {
			per[o] = append(per[o], m)
		} else {
			other++
		}
	}
	var resent []string
	for _, id := range slices.Sorted(maps.Keys(per)) {
		ms := per[id]
		if len(ms) < 2 {
			continue
		}
		at := make([]string, len(ms))
		ids := map[string]bool{}
		for i, m := range ms {
			at[i] = m.Received.UTC().Format(time.RFC3339Nano)
			ids[m.MessageID] = true
		}
		if len(ms) == 2 && len(ids) == 1 && len(resent) < crashResends {
			resent = append(resent, fmt.Sprintf("order %s resent under %s after a crash (received %s)", id, ms[0].MessageID, strings.Join(at, ", ")))
			continue
		}
		found.add("order %s: %d invoice emails (received %s)", id, len(ms), strings.Join(at, ", "))
	}
	detail := fmt.Sprintf("%d invoice emails in %s for %s", len(mails)-other, mailDir, plural(len(per), "order"))
	if len(resent) > 0 {
		detail += fmt.Sprintf(" (%d of %d allowed crash resends: %s)", len(resent), crashResends, strings.Join(resent, "; "))
	}
	if len(found) == 0 {
		detail += ", none twice"
	} else {
		detail += fmt.Sprintf(", %d more than once", len(found))
	}
	if other > 0 {
		detail += fmt.Sprintf("; %d other messages", other)
	}
	if ix != nil {
		detail += fmt.Sprintf("; %s with an EmailSent event", plural(len(ix.EmailsSent), "order"))
	}
	return invariant(3, len(per), found, detail)
}

// verified is the outcome of replay.Verify for one projection.
type verified struct {
	Name string
	V    replay.Verification
	Err  error
}

// checkReadModels is I4: every projection verified with no difference.
func checkReadModels(results []verified) report.Invariant {
	var found offenders
	parts := make([]string, 0, len(results))
	compared := 0
	for _, r := range results {
		if r.Err != nil {
			parts = append(parts, fmt.Sprintf("%s: not verified: %v", r.Name, r.Err))
			found.add("%s: not verified: %v", r.Name, r.Err)
			continue
		}
		compared += int(r.V.Compared)
		parts = append(parts, fmt.Sprintf("%s: %d documents, %d differences", r.Name, r.V.Compared, r.V.Differences))
		for _, d := range r.V.Examples {
			switch {
			case d.Live == nil:
				found.add("%s %s: missing from the live read model", r.Name, d.ID)
			case d.Rebuilt == nil:
				found.add("%s %s: in the live read model, not in the log", r.Name, d.ID)
			default:
				fields := make([]string, len(d.Fields))
				for i, f := range d.Fields {
					fields[i] = fmt.Sprintf("%s (live %v, log %v)", f, d.Live[f], d.Rebuilt[f])
				}
				found.add("%s %s: %s", r.Name, d.ID, strings.Join(fields, "; "))
			}
		}
		if extra := int(r.V.Differences) - len(r.V.Examples); extra > 0 {
			found.add("%s: %d more documents differ", r.Name, extra)
		}
	}
	return invariant(4, compared, found, strings.Join(parts, "; "))
}

// productRead is a product as GET /products/{id} showed it.
type productRead struct {
	ID    string
	Stock int64
	Err   string // the read failed: why
}

// checkStock is I5, on the stock events of the log in per-product order,
// the confirmed orders and the products' read model:
//   - every StockReserved.Remaining, StockReceived.Available and
//     StockReservationRejected.Available is ≥ 0;
//   - every confirmed order (not also cancelled) holds, for each line of its
//     OrderPlaced, a StockReserved of that product and quantity that no
//     StockReleased gave back (without its OrderPlaced, at least one
//     reservation);
//   - every product read has a stock ≥ 0.
func checkStock(ix *Index, products []productRead) report.Invariant {
	var found offenders
	type hold struct {
		qty      int32
		released string // the release's reason, once given back
	}
	held := map[[2]string]*hold{} // (order, product)
	reservations := map[string]int{}
	events := 0
	for _, p := range slices.Sorted(maps.Keys(ix.Stock)) {
		for _, se := range ix.Stock[p] {
			events++
			switch e := se.Event.(type) {
			case schemas.StockReserved:
				if e.Remaining < 0 {
					found.add("product %s: StockReserved for order %s leaves %d units (%s)", p, e.OrderID, e.Remaining, se.At)
				}
				held[[2]string{e.OrderID, p}] = &hold{qty: e.Quantity}
				reservations[e.OrderID]++
			case schemas.StockReceived:
				if e.Available < 0 {
					found.add("product %s: StockReceived leaves %d units (%s)", p, e.Available, se.At)
				}
			case schemas.StockReservationRejected:
				if e.Available < 0 {
					found.add("product %s: StockReservationRejected for order %s shows %d units (%s)", p, e.OrderID, e.Available, se.At)
				}
			case schemas.StockReleased:
				if h := held[[2]string{e.OrderID, p}]; h != nil {
					h.released = cmp.Or(e.Reason, "no reason")
				}
			}
		}
	}
	confirmed := 0
	for _, id := range slices.Sorted(maps.Keys(ix.Confirmed)) {
		if _, cancelled := ix.Cancelled[id]; cancelled {
			continue
		}
		confirmed++
		placed, ok := ix.Placed[id]
		if !ok {
			if reservations[id] == 0 {
				found.add("order %s: confirmed, with no OrderPlaced and no StockReserved", id)
			}
			continue
		}
		for _, line := range placed.Items {
			h := held[[2]string{id, line.ProductID}]
			switch {
			case h == nil:
				found.add("order %s: confirmed without stock reserved for product %s", id, line.ProductID)
			case h.released != "":
				found.add("order %s: confirmed, but its reservation of product %s was released (%s)", id, line.ProductID, h.released)
			case h.qty != line.Quantity:
				found.add("order %s: confirmed with %d units of product %s reserved, its line asks %d", id, h.qty, line.ProductID, line.Quantity)
			}
		}
	}
	for _, p := range products {
		switch {
		case p.Err != "":
			found.add("product %s: stock not read: %s", p.ID, p.Err)
		case p.Stock < 0:
			found.add("product %s: read model stock %d", p.ID, p.Stock)
		}
	}
	detail := fmt.Sprintf("%d stock events of %s, %s, %s read",
		events, plural(len(ix.Stock), "product"), plural(confirmed, "confirmed order"), plural(len(products), "product"))
	if len(found) == 0 {
		detail += ": no stock below zero, every confirmed order holds its reserved stock"
	} else {
		detail += fmt.Sprintf(": %s", plural(len(found), "violation"))
	}
	return invariant(5, events+confirmed+len(products), found, detail)
}

// orderRead is an order as GET /orders/{id} showed it.
type orderRead struct {
	ID           string
	Status       string
	CancelReason *string
	EmailedAt    *time.Time // the invoice's; nil without an invoice or an email
	Err          string     // the read failed: why
}

// checkTerminal is I6: every accepted order is confirmed with its invoice
// emailed, or cancelled with a reason.
func checkTerminal(orders []orderRead) report.Invariant {
	var found offenders
	emailed, reasons := 0, map[string]int{}
	for _, o := range orders {
		switch {
		case o.Err != "":
			found.add("order %s: %s", o.ID, o.Err)
		case o.Status == "confirmed" && o.EmailedAt != nil:
			emailed++
		case o.Status == "confirmed":
			found.add("order %s: confirmed, invoice not emailed", o.ID)
		case o.Status == "cancelled" && o.CancelReason != nil && *o.CancelReason != "":
			reasons[*o.CancelReason]++
		case o.Status == "cancelled":
			found.add("order %s: cancelled without a reason", o.ID)
		default:
			found.add("order %s: still %s", o.ID, cmp.Or(o.Status, "without a status"))
		}
	}
	cancelled := 0
	var why []string
	for _, r := range slices.Sorted(maps.Keys(reasons)) {
		cancelled += reasons[r]
		why = append(why, fmt.Sprintf("%s %d", r, reasons[r]))
	}
	detail := fmt.Sprintf("%s read: %d confirmed and emailed, %d cancelled", plural(len(orders), "accepted order"), emailed, cancelled)
	if len(why) > 0 {
		detail += " (" + strings.Join(why, ", ") + ")"
	}
	if len(found) > 0 {
		detail += fmt.Sprintf(", %d not in a terminal state", len(found))
	}
	return invariant(6, len(orders), found, detail)
}
