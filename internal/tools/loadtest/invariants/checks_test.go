package invariants

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"shopstream/internal/devinfra/embedded/psp"
	"shopstream/internal/devinfra/embedded/smtpd"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/tools/loadtest/report"
	"shopstream/processors/email"
	"shopstream/projectors/replay"
	"shopstream/schemas"
)

const (
	cust  = "c1"
	prodA = "pA"
	prodB = "pB"
	ord1  = "o1"
	ord2  = "o2"
)

// logOf indexes events, each with its own event id and offset; an
// eventlog.Envelope given as is keeps its own (to repeat an event id).
func logOf(events ...any) *Index {
	ix := NewIndex()
	for i, e := range events {
		switch e := e.(type) {
		case eventlog.Envelope:
			ix.Add(e)
		case schemas.Event:
			ix.Add(eventlog.Envelope{Topic: "t", Offset: int64(i), Meta: eventlog.Metadata{EventID: fmt.Sprint("ev-", i)}, Event: e})
		default:
			panic(fmt.Sprintf("logOf: %T", e))
		}
	}
	return ix
}

// withID is an event with a given event id, as the relay would publish it
// again.
func withID(id string, e schemas.Event) eventlog.Envelope {
	return eventlog.Envelope{Topic: "t", Meta: eventlog.Metadata{EventID: id}, Event: e}
}

// a confirmed order o1 of 2 × pA and 1 × pB, and what led to it.
func confirmedOrder() []any {
	return []any{
		schemas.CustomerSignedUp{CustomerID: cust},
		schemas.ProductRegistered{ProductID: prodA, InitialStock: 5},
		schemas.ProductRegistered{ProductID: prodB, InitialStock: 1},
		schemas.StockReceived{ProductID: prodA, Quantity: 5, Available: 5, CatalogVersion: 1},
		schemas.StockReceived{ProductID: prodB, Quantity: 1, Available: 1, CatalogVersion: 1},
		schemas.ItemAddedToCart{CustomerID: cust, ProductID: prodA, Quantity: 1},
		schemas.OrderPlaced{OrderID: ord1, CustomerID: cust, PaymentMethod: "card",
			Items: []schemas.OrderLine{{ProductID: prodA, Quantity: 2}, {ProductID: prodB, Quantity: 1}}},
		schemas.StockReserved{ProductID: prodA, OrderID: ord1, Quantity: 2, Remaining: 3},
		schemas.StockReserved{ProductID: prodB, OrderID: ord1, Quantity: 1, Remaining: 0},
		schemas.PaymentSucceeded{OrderID: ord1, Method: "card", ProviderReference: "ch_1"},
		schemas.OrderConfirmed{OrderID: ord1},
		schemas.EmailSent{OrderID: ord1, MessageID: email.MessageID(ord1)},
	}
}

func with(base []any, more ...any) []any { return append(append([]any{}, base...), more...) }

// expect checks an invariant's verdict, and that each of names appears in
// its violations (and that there are none when it holds).
func expect(t *testing.T, inv report.Invariant, id string, holds bool, checked int, names ...string) {
	t.Helper()
	if inv.ID != id {
		t.Errorf("ID %q, want %q", inv.ID, id)
	}
	if inv.Holds != holds {
		t.Errorf("Holds %v, want %v; detail %q, violations %q", inv.Holds, holds, inv.Detail, inv.Violations)
	}
	if holds && len(inv.Violations) > 0 {
		t.Errorf("holds with violations %q", inv.Violations)
	}
	if !holds && len(inv.Violations) == 0 && !strings.HasPrefix(inv.Detail, "not checked") {
		t.Errorf("fails without naming a violation: %q", inv.Detail)
	}
	if checked >= 0 && inv.Checked != checked {
		t.Errorf("Checked %d, want %d (detail %q)", inv.Checked, checked, inv.Detail)
	}
	joined := strings.Join(inv.Violations, "\n")
	for _, n := range names {
		if !strings.Contains(joined, n) {
			t.Errorf("violations %q do not name %q", inv.Violations, n)
		}
	}
	if strings.Contains(inv.Detail, "\n") {
		t.Errorf("detail is not one line: %q", inv.Detail)
	}
	t.Logf("%s %v: %s %q", inv.ID, inv.Holds, inv.Detail, inv.Violations)
}

func TestCheckLost(t *testing.T) {
	all := Accepted{Customers: []string{cust}, Products: []string{prodA, prodB}, Orders: []string{ord1},
		CartAdds: map[[2]string]int{{cust, prodA}: 1}}
	cases := []struct {
		name    string
		log     []any
		acc     Accepted
		holds   bool
		checked int
		names   []string
	}{
		{name: "every command has its event", log: confirmedOrder(), acc: all, holds: true, checked: 5},
		{name: "nothing accepted", log: nil, acc: Accepted{}, holds: true, checked: 0},
		{name: "order without OrderPlaced", log: confirmedOrder(),
			acc: Accepted{Orders: []string{ord1, ord2}}, checked: 2, names: []string{"order o2: no OrderPlaced"}},
		{name: "customer, product and review lost", log: nil,
			acc:     Accepted{Customers: []string{cust}, Products: []string{prodA}, Reviews: []string{"r1"}},
			checked: 3, names: []string{"customer c1: no CustomerSignedUp", "product pA: no ProductRegistered", "review r1: no ReviewAdded"}},
		{name: "review found", log: []any{schemas.ReviewAdded{ReviewID: "r1", ProductID: prodA}},
			acc: Accepted{Reviews: []string{"r1"}}, holds: true, checked: 1},
		{name: "fewer cart adds than accepted", log: confirmedOrder(),
			acc:     Accepted{CartAdds: map[[2]string]int{{cust, prodA}: 3}},
			checked: 3, names: []string{"cart add (customer c1, product pA): 3 accepted, 1 ItemAddedToCart"}},
		{name: "a republished cart add counts once", log: []any{
			withID("e1", schemas.ItemAddedToCart{CustomerID: cust, ProductID: prodA, Quantity: 1}),
			withID("e1", schemas.ItemAddedToCart{CustomerID: cust, ProductID: prodA, Quantity: 1})},
			acc: Accepted{CartAdds: map[[2]string]int{{cust, prodA}: 2}}, checked: 2, names: []string{"2 accepted, 1 ItemAddedToCart"}},
		{name: "more cart adds than accepted", log: with(confirmedOrder(), schemas.ItemAddedToCart{CustomerID: cust, ProductID: prodA, Quantity: 1}),
			acc: Accepted{CartAdds: map[[2]string]int{{cust, prodA}: 1}}, holds: true, checked: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expect(t, checkLost(logOf(c.log...), c.acc), "I1", c.holds, c.checked, c.names...)
		})
	}
}

func TestCheckLostShowsPoison(t *testing.T) {
	ix := logOf(confirmedOrder()...)
	ix.Poison, ix.PoisonExamples = 1, []string{"shop.orders.v1/0/7: poison record"}
	inv := checkLost(ix, Accepted{Orders: []string{ord1}})
	expect(t, inv, "I1", true, 1)
	if !strings.Contains(inv.Detail, "1 records could not be decoded (first: shop.orders.v1/0/7") {
		t.Errorf("detail %q does not show the poison record", inv.Detail)
	}
}

func charge(order, status, id string) psp.Charge {
	return psp.Charge{OrderID: order, Status: status, ChargeID: id}
}

func TestCheckCharges(t *testing.T) {
	cases := []struct {
		name    string
		log     []any
		listed  map[string][]psp.Charge
		holds   bool
		checked int
		names   []string
		detail  string
	}{
		{name: "one charge per order", listed: map[string][]psp.Charge{
			"card": {charge(ord1, psp.StatusSucceeded, "ch_1")}, "sepa": {charge(ord2, psp.StatusSucceeded, "sdd_1")}},
			holds: true, checked: 2, detail: "2 succeeded charges over 2 orders"},
		{name: "declines are no charge", listed: map[string][]psp.Charge{
			"card": {charge(ord1, psp.StatusDeclined, ""), charge(ord1, psp.StatusSucceeded, "ch_1")}, "sepa": {charge(ord2, psp.StatusDeclined, "")}},
			holds: true, checked: 1},
		{name: "duplicate charge", listed: map[string][]psp.Charge{
			"card": {charge(ord1, psp.StatusSucceeded, "ch_1"), charge(ord1, psp.StatusSucceeded, "ch_2")}, "sepa": nil},
			checked: 1, names: []string{"order o1: charged 2 times (card ch_1, card ch_2)"}},
		{name: "charged by both gateways", listed: map[string][]psp.Charge{
			"card": {charge(ord1, psp.StatusSucceeded, "ch_1")}, "sepa": {charge(ord1, psp.StatusSucceeded, "sdd_1")}},
			checked: 1, names: []string{"order o1: charged 2 times"}},
		{name: "no simulator: PaymentSucceeded events", log: confirmedOrder(), listed: map[string][]psp.Charge{},
			holds: true, checked: 1, detail: "PaymentSucceeded events for card"},
		{name: "no simulator: a republished PaymentSucceeded counts once", listed: map[string][]psp.Charge{}, log: []any{
			withID("p1", schemas.PaymentSucceeded{OrderID: ord1, Method: "card"}),
			withID("p1", schemas.PaymentSucceeded{OrderID: ord1, Method: "card"})},
			holds: true, checked: 1},
		{name: "no simulator: two PaymentSucceeded", listed: map[string][]psp.Charge{}, log: with(confirmedOrder(),
			schemas.PaymentSucceeded{OrderID: ord1, Method: "card", ProviderReference: "ch_9"}),
			checked: 1, names: []string{"order o1: charged 2 times (card ch_1, card ch_9)"}},
		{name: "bank simulated, card PSP real", log: confirmedOrder(), listed: map[string][]psp.Charge{
			"sepa": {charge(ord1, psp.StatusSucceeded, "sdd_1")}},
			checked: 1, names: []string{"order o1: charged 2 times"}, detail: "from PaymentSucceeded events for card (its card PSP is not a simulator) and SEPA bank GET /charges"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv := checkCharges(logOf(c.log...), c.listed)
			expect(t, inv, "I2", c.holds, c.checked, c.names...)
			if !strings.Contains(inv.Detail, c.detail) {
				t.Errorf("detail %q lacks %q", inv.Detail, c.detail)
			}
		})
	}
}

func mail(order string, at time.Time) smtpd.Mail {
	return smtpd.Mail{MessageID: "<" + email.MessageID(order) + ">", Received: at, Subject: "Your invoice"}
}

func TestOrderOfMail(t *testing.T) {
	const id = "01a1fdf2-2fca-702e-b063-b39815166668"
	cases := []struct {
		m    smtpd.Mail
		want string
	}{
		{mail(id, time.Time{}), id},
		{smtpd.Mail{MessageID: email.MessageID(id)}, id}, // without the angle brackets
		{smtpd.Mail{MessageID: "<x@elsewhere>", Attachments: []smtpd.Attachment{{Filename: "invoice-" + id + ".pdf"}}}, id},
		{smtpd.Mail{MessageID: "<newsletter-1@shopstream>"}, ""},
		{smtpd.Mail{MessageID: "<invoice-@shopstream>"}, ""},
		{smtpd.Mail{}, ""},
	}
	for _, c := range cases {
		if got := orderOfMail(c.m); got != c.want {
			t.Errorf("orderOfMail(%q, %v) = %q, want %q", c.m.MessageID, c.m.Attachments, got, c.want)
		}
	}
}

func TestCheckEmails(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		log     []any
		nolog   bool
		dir     string
		mails   []smtpd.Mail
		holds   bool
		checked int
		names   []string
		detail  string
		resends int // crash resends allowed
	}{
		{name: "one mail per order", log: confirmedOrder(), dir: "/mail", mails: []smtpd.Mail{mail(ord1, t0), mail(ord2, t0.Add(time.Second))},
			holds: true, checked: 2, detail: "2 invoice emails in /mail for 2 orders, none twice; 1 order with an EmailSent event"},
		{name: "two mails for one order", log: confirmedOrder(), dir: "/mail",
			mails:   []smtpd.Mail{mail(ord1, t0), mail(ord2, t0), mail(ord1, t0.Add(time.Second))},
			checked: 2, names: []string{"order o1: 2 invoice emails (received 2026-11-27T09:00:00Z, 2026-11-27T09:00:01Z)"}},
		{name: "a crash resend, allowed", log: confirmedOrder(), dir: "/mail", resends: 1,
			mails: []smtpd.Mail{mail(ord1, t0), mail(ord2, t0), mail(ord1, t0.Add(time.Second))},
			holds: true, checked: 2, detail: "(1 of 1 allowed crash resends: order o1 resent under"},
		{name: "two crash resends, one allowed", log: confirmedOrder(), dir: "/mail", resends: 1,
			mails:   []smtpd.Mail{mail(ord1, t0), mail(ord2, t0), mail(ord1, t0.Add(time.Second)), mail(ord2, t0.Add(time.Second))},
			checked: 2, names: []string{"order o2: 2 invoice emails (received 2026-11-27T09:00:00Z, 2026-11-27T09:00:01Z)"}},
		{name: "three copies: more than a crash resend", log: confirmedOrder(), dir: "/mail", resends: 5,
			mails:   []smtpd.Mail{mail(ord1, t0), mail(ord1, t0.Add(time.Second)), mail(ord1, t0.Add(2*time.Second))},
			checked: 1, names: []string{"order o1: 3 invoice emails"}},
		{name: "other messages are not invoices", log: confirmedOrder(), dir: "/mail",
			mails: []smtpd.Mail{mail(ord1, t0), {MessageID: "<hello@example.org>"}, {MessageID: "<hello@example.org>"}},
			holds: true, checked: 1, detail: "2 other messages"},
		{name: "mailbox without the log", nolog: true, dir: "/mail", mails: []smtpd.Mail{mail(ord1, t0)}, holds: true, checked: 1},
		{name: "empty mailbox", log: nil, dir: "/mail", holds: true, checked: 0},
		{name: "no mailbox: EmailSent events", log: confirmedOrder(), holds: true, checked: 1,
			detail: "no mailbox (a real SMTP relay): EmailSent events counted per order instead"},
		{name: "no mailbox: two EmailSent", log: with(confirmedOrder(), schemas.EmailSent{OrderID: ord1}), checked: 1,
			names: []string{"order o1: 2 EmailSent events"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ix *Index
			if !c.nolog {
				ix = logOf(c.log...)
			}
			inv := checkEmails(ix, c.dir, c.mails, c.resends)
			expect(t, inv, "I3", c.holds, c.checked, c.names...)
			if !strings.Contains(inv.Detail, c.detail) {
				t.Errorf("detail %q lacks %q", inv.Detail, c.detail)
			}
		})
	}
}

func TestCheckReadModels(t *testing.T) {
	ok := []verified{{Name: "products", V: replay.Verification{Compared: 3}}, {Name: "orders", V: replay.Verification{Compared: 2}}}
	inv := checkReadModels(ok)
	expect(t, inv, "I4", true, 5)
	if want := "products: 3 documents, 0 differences; orders: 2 documents, 0 differences"; inv.Detail != want {
		t.Errorf("detail %q, want %q", inv.Detail, want)
	}

	differ := []verified{
		{Name: "products", V: replay.Verification{Compared: 3, Differences: 7, Examples: []replay.Difference{
			{ID: prodA, Fields: []string{"stock"}, Live: bson.M{"stock": int64(2)}, Rebuilt: bson.M{"stock": int64(3)}},
			{ID: prodB, Rebuilt: bson.M{}},
		}}},
		{Name: "orders", V: replay.Verification{Compared: 1, Differences: 1, Examples: []replay.Difference{{ID: ord1, Live: bson.M{}}}}},
	}
	expect(t, checkReadModels(differ), "I4", false, 4,
		"products pA: stock (live 2, log 3)", "products pB: missing from the live read model",
		"orders o1: in the live read model, not in the log", "products: 5 more documents differ")

	failed := []verified{ok[0], {Name: "orders", Err: errors.New("the live projector is still 3 records behind")}}
	inv = checkReadModels(failed)
	expect(t, inv, "I4", false, 3, "orders: not verified: the live projector is still 3 records behind")
}

func TestCheckStock(t *testing.T) {
	readOK := []productRead{{ID: prodA, Stock: 3}, {ID: prodB, Stock: 0}}
	cases := []struct {
		name     string
		log      []any
		products []productRead
		holds    bool
		checked  int
		names    []string
	}{
		{name: "confirmed order holds its stock", log: confirmedOrder(), products: readOK, holds: true, checked: 4 + 1 + 2},
		{name: "negative Remaining", log: with(confirmedOrder(),
			schemas.StockReserved{ProductID: prodB, OrderID: ord2, Quantity: 1, Remaining: -1}),
			checked: -1, names: []string{"product pB: StockReserved for order o2 leaves -1 units"}},
		{name: "negative Available", log: []any{
			schemas.StockReceived{ProductID: prodA, Available: -2},
			schemas.StockReservationRejected{ProductID: prodB, OrderID: ord2, Quantity: 1, Available: -1}},
			checked: 2, names: []string{"product pA: StockReceived leaves -2 units", "product pB: StockReservationRejected for order o2 shows -1 units"}},
		{name: "confirmed order without reservation", log: []any{
			schemas.OrderPlaced{OrderID: ord2, Items: []schemas.OrderLine{{ProductID: prodA, Quantity: 1}}},
			schemas.OrderConfirmed{OrderID: ord2}},
			checked: 1, names: []string{"order o2: confirmed without stock reserved for product pA"}},
		{name: "confirmed order with one line of two reserved", log: []any{
			schemas.OrderPlaced{OrderID: ord2, Items: []schemas.OrderLine{{ProductID: prodA, Quantity: 1}, {ProductID: prodB, Quantity: 1}}},
			schemas.StockReserved{ProductID: prodA, OrderID: ord2, Quantity: 1, Remaining: 4},
			schemas.OrderConfirmed{OrderID: ord2}},
			checked: 2, names: []string{"order o2: confirmed without stock reserved for product pB"}},
		{name: "confirmed order whose reservation was released", log: with(confirmedOrder(),
			schemas.StockReleased{ProductID: prodA, OrderID: ord1, Quantity: 2, Reason: "payment_failed"}),
			checked: -1, names: []string{"order o1: confirmed, but its reservation of product pA was released (payment_failed)"}},
		{name: "cancelled order released", log: []any{
			schemas.OrderPlaced{OrderID: ord2, Items: []schemas.OrderLine{{ProductID: prodA, Quantity: 1}}},
			schemas.StockReserved{ProductID: prodA, OrderID: ord2, Quantity: 1, Remaining: 4},
			schemas.StockReleased{ProductID: prodA, OrderID: ord2, Quantity: 1, Reason: "payment_failed"},
			schemas.OrderCancelled{OrderID: ord2, Reason: "payment_failed"}},
			holds: true, checked: 2},
		{name: "reserved quantity is not the line's", log: []any{
			schemas.OrderPlaced{OrderID: ord2, Items: []schemas.OrderLine{{ProductID: prodA, Quantity: 3}}},
			schemas.StockReserved{ProductID: prodA, OrderID: ord2, Quantity: 1, Remaining: 4},
			schemas.OrderConfirmed{OrderID: ord2}},
			checked: 2, names: []string{"order o2: confirmed with 1 units of product pA reserved, its line asks 3"}},
		{name: "confirmed without OrderPlaced but reserved", log: []any{
			schemas.StockReserved{ProductID: prodA, OrderID: ord2, Quantity: 1, Remaining: 4},
			schemas.OrderConfirmed{OrderID: ord2}}, holds: true, checked: 2},
		{name: "confirmed without OrderPlaced nor reservation", log: []any{schemas.OrderConfirmed{OrderID: ord2}},
			checked: 1, names: []string{"order o2: confirmed, with no OrderPlaced and no StockReserved"}},
		{name: "negative stock in the read model", log: confirmedOrder(),
			products: []productRead{{ID: prodA, Stock: -1}, {ID: prodB, Err: "not in the products read model"}},
			checked:  7, names: []string{"product pA: read model stock -1", "product pB: stock not read: not in the products read model"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expect(t, checkStock(logOf(c.log...), c.products), "I5", c.holds, c.checked, c.names...)
		})
	}
}

func TestCheckTerminal(t *testing.T) {
	at := time.Now()
	reason := func(s string) *string { return &s }
	cases := []struct {
		name   string
		orders []orderRead
		holds  bool
		names  []string
		detail string
	}{
		{name: "all terminal", orders: []orderRead{
			{ID: "a", Status: "confirmed", EmailedAt: &at},
			{ID: "b", Status: "cancelled", CancelReason: reason("out_of_stock")},
			{ID: "c", Status: "cancelled", CancelReason: reason("payment_failed")},
			{ID: "d", Status: "cancelled", CancelReason: reason("out_of_stock")}},
			holds: true, detail: "4 accepted orders read: 1 confirmed and emailed, 3 cancelled (out_of_stock 2, payment_failed 1)"},
		{name: "none", holds: true, detail: "0 accepted orders read"},
		{name: "still placed", orders: []orderRead{{ID: "a", Status: "placed"}, {ID: "b", Status: "paid"}},
			names: []string{"order a: still placed", "order b: still paid"}},
		{name: "confirmed, not emailed", orders: []orderRead{{ID: "a", Status: "confirmed"}}, names: []string{"order a: confirmed, invoice not emailed"}},
		{name: "cancelled without reason", orders: []orderRead{{ID: "a", Status: "cancelled"}, {ID: "b", Status: "cancelled", CancelReason: reason("")}},
			names: []string{"order a: cancelled without a reason", "order b: cancelled without a reason"}},
		{name: "not readable", orders: []orderRead{{ID: "a", Err: "not in the orders read model (GET /orders/{id}: 404)"}},
			names: []string{"order a: not in the orders read model"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv := checkTerminal(c.orders)
			expect(t, inv, "I6", c.holds, len(c.orders), c.names...)
			if !strings.Contains(inv.Detail, c.detail) {
				t.Errorf("detail %q lacks %q", inv.Detail, c.detail)
			}
		})
	}
}

// At most MaxViolations offenders are named, in sorted order, whatever
// the order found; the detail still counts them all.
func TestViolationsAreCappedAndSorted(t *testing.T) {
	var orders []orderRead
	for i := 25; i > 0; i-- {
		orders = append(orders, orderRead{ID: fmt.Sprintf("o%02d", i), Status: "placed"})
	}
	inv := checkTerminal(orders)
	if len(inv.Violations) != MaxViolations || inv.Violations[0] != "order o01: still placed" || inv.Violations[9] != "order o10: still placed" {
		t.Fatalf("violations %q", inv.Violations)
	}
	if !strings.Contains(inv.Detail, "25 not in a terminal state") {
		t.Fatalf("detail %q", inv.Detail)
	}
}

func TestIndexSkipsRepublishedEvents(t *testing.T) {
	ix := logOf(withID("e1", schemas.EmailSent{OrderID: ord1}), withID("e1", schemas.EmailSent{OrderID: ord1}),
		withID("e2", schemas.StockReserved{ProductID: prodA, OrderID: ord1, Quantity: 1}),
		withID("e2", schemas.StockReserved{ProductID: prodA, OrderID: ord1, Quantity: 1}))
	if ix.Events != 2 || ix.EmailsSent[ord1] != 1 || len(ix.Stock[prodA]) != 1 {
		t.Fatalf("index %+v", ix)
	}
}
