package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/app"
	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/devinfra/embedded/smtpd"
	"shopstream/processors/email/quota"
	"shopstream/processors/invoicing/invoicepdf/pdftest"
	"shopstream/schemas"

	"shopstream/internal/testinfra/testenv"
)

// waitOrder polls GET /orders/{id} until check passes.
func (s *shop) waitOrder(id string, timeout time.Duration, check func(map[string]any) bool) map[string]any {
	s.t.Helper()
	var last map[string]any
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		code, _, b := s.do(http.MethodGet, "/orders/"+id, "", "")
		if code == http.StatusOK {
			last = decodeBody(s.t, b)
			if check(last) {
				return last
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("order %s never passed the check; last seen %v", id, last)
	return nil
}

func (s *shop) order(customer, method, product string, quantity int) (int, map[string]any) {
	s.t.Helper()
	return s.post("/orders", fmt.Sprintf(`{"customer_id": %q, "payment_method": %q, "items": [{"product_id": %q, "quantity": %d}]}`,
		customer, method, product, quantity))
}

// A card order and a SEPA order go placed → stock_reserved → paid →
// confirmed, get their invoice and its email, whose .eml carries the PDF.
func TestSagaConfirmsCardAndSepaOrders(t *testing.T) {
	dir := t.TempDir()
	s := startShop(t, dir)
	pool := s.pool()
	customer, product := s.customer(), s.product(pool, 5)
	for _, method := range []string{"card", "sepa"} {
		code, placed := s.order(customer, method, product, 2)
		if code != http.StatusAccepted {
			t.Fatalf("%s order: %d %v", method, code, placed)
		}
		o := s.waitOrder(placed["id"].(string), 20*time.Second, func(o map[string]any) bool {
			inv, _ := o["invoice"].(map[string]any)
			return o["status"] == "confirmed" && inv != nil && inv["issued_at"] != nil && inv["emailed_at"] != nil
		})
		history := fmt.Sprint(o["history"])
		for _, st := range []string{"placed", "confirmed"} {
			if !strings.Contains(history, st) {
				t.Errorf("%s order history %s lacks %s", method, history, st)
			}
		}
		if p := o["payment"].(map[string]any); p["status"] != "succeeded" || p["method"] != method || p["reference"] == "" {
			t.Errorf("%s payment %v", method, p)
		}
		t.Logf("%s order: %v", method, o)
	}
	var available int64
	if err := pool.QueryRow(context.Background(), `SELECT available FROM inventory.stock WHERE id = $1`, product).Scan(&available); err != nil || available != 1 {
		t.Fatalf("available %d (%v), want 5 - 2 - 2 = 1", available, err)
	}
	mails := readMails(t, filepath.Join(dir, "mail"))
	if len(mails) != 2 {
		t.Fatalf("%d emails in %s, want 2", len(mails), filepath.Join(dir, "mail"))
	}
	for _, m := range mails {
		pdf := attachedPDF(m)
		if len(pdf) == 0 || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
			t.Fatalf("email %s has no PDF attached", m.MessageID)
		}
		renderPDF(t, pdf)
	}
}

// readMails parses every .eml the dev SMTP server wrote, oldest first.
func readMails(t *testing.T, dir string) []smtpd.Mail {
	t.Helper()
	mails, err := smtpd.ReadMailbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	return mails
}

// attachedPDF is the content of m's application/pdf attachment (the last,
// if several), nil without one.
func attachedPDF(m smtpd.Mail) []byte {
	var pdf []byte
	for _, a := range m.Attachments {
		if a.ContentType == "application/pdf" {
			pdf = a.Data
		}
	}
	return pdf
}

// renderPDF renders page 1 with pdftoppm (pdftest.Page1: fails unless
// poppler writes a decodable PNG) when poppler-utils is there; without it
// it only logs, so the rest of the saga test still counts.
func renderPDF(t *testing.T, pdf []byte) {
	t.Helper()
	if !pdftest.Available() {
		t.Log("pdftoppm not on PATH (apt-get install poppler-utils): PDF not rendered")
		return
	}
	pdftest.Page1(t, pdf)
}

// 200 parallel one-unit orders against a stock of 20: exactly 20 confirmed,
// every other one refused at once (409 sold_out) or cancelled
// out_of_stock, and the stock ends at 0, never below.
func TestTwoHundredOrdersAgainstTwentyUnits(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	s := startShop(t, t.TempDir())
	pool := s.pool()
	product := s.product(pool, 20)
	customers := make([]string, 10)
	for i := range customers {
		customers[i] = s.customer()
	}
	var mu sync.Mutex
	accepted, answers := []string{}, map[int]int{}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			code, body := s.order(customers[i%len(customers)], "card", product, 1)
			for shed := 0; code == http.StatusTooManyRequests; shed++ { // as a client does: retry after a pause
				mu.Lock()
				answers[code]++
				mu.Unlock()
				time.Sleep(time.Duration(10+shed*10) * time.Millisecond)
				code, body = s.order(customers[i%len(customers)], "card", product, 1)
			}
			mu.Lock()
			defer mu.Unlock()
			answers[code]++
			if code == http.StatusAccepted {
				accepted = append(accepted, body["id"].(string))
			}
		})
	}
	wg.Wait()
	t.Logf("answers to 200 orders: %v", answers)
	if answers[http.StatusAccepted]+answers[http.StatusConflict] != 200 {
		t.Fatalf("answers %v: want 202 or 409 for each, after any 429", answers)
	}
	status := map[string]int{}
	for _, id := range accepted {
		o := s.waitOrder(id, 60*time.Second, func(o map[string]any) bool {
			return o["status"] == "confirmed" || o["status"] == "cancelled"
		})
		key := fmt.Sprint(o["status"])
		if r, ok := o["cancel_reason"].(string); ok {
			key += " " + r
		}
		status[key]++
	}
	t.Logf("accepted orders ended: %v", status)
	if status["confirmed"] != 20 || status["confirmed"]+status["cancelled out_of_stock"] != len(accepted) {
		t.Fatalf("ends %v: want 20 confirmed and the rest cancelled out_of_stock", status)
	}
	var available int64
	if err := pool.QueryRow(context.Background(), `SELECT available FROM inventory.stock WHERE id = $1`, product).Scan(&available); err != nil || available != 0 {
		t.Fatalf("available %d (%v), want 0", available, err)
	}
}

// With --email-rate 5, 100 confirmed orders give 100 emails, each once,
// and no one-second window (by the SMTP server's clock) holds more than 5.
func TestEmailQuotaHoldsForTheGroup(t *testing.T) {
	testenv.Slow(t, "100 emails at 5 per second, about 25 s")
	dir := t.TempDir()
	s := startShop(t, dir, func(c *app.Config) { c.EmailRate = 5 })
	pool := s.pool()
	customer, product := s.customer(), s.product(pool, 100)
	for range 100 {
		if code, body := s.order(customer, "card", product, 1); code != http.StatusAccepted {
			t.Fatalf("order: %d %v", code, body)
		}
	}
	began := time.Now()
	for time.Since(began) < 60*time.Second {
		if len(readMails(t, filepath.Join(dir, "mail"))) >= 100 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // a duplicate would show up now
	mails := readMails(t, filepath.Join(dir, "mail"))
	ids := map[string]int{}
	var received []time.Time // the provider's clock: when the SMTP server stored each message
	for _, m := range mails {
		ids[m.MessageID]++
		received = append(received, m.Received)
	}
	// The sender's clock: when each send started, as EmailSent records it.
	rows, err := pool.Query(context.Background(), `SELECT (state->>'sent_at')::timestamptz FROM notifications.emails WHERE state ? 'sent_at'`)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		t.Fatal(err)
	}
	worst, worstReceived := quota.MostInWindow(sent, time.Second), quota.MostInWindow(received, time.Second)
	slices.SortFunc(sent, time.Time.Compare) // for the span: first to last send
	var span time.Duration
	if len(sent) > 0 {
		span = sent[len(sent)-1].Sub(sent[0])
	}
	t.Logf("%d emails, %d distinct Message-IDs, sent over %v (%.2f/s for a quota of 5/s); at most %d sends in any 1 s window (%d by the SMTP server's clock)",
		len(mails), len(ids), span.Round(time.Millisecond), float64(len(sent)-1)/span.Seconds(), worst, worstReceived)
	if len(mails) != 100 || len(ids) != 100 {
		t.Fatalf("%d emails with %d distinct Message-IDs, want 100 of each", len(mails), len(ids))
	}
	if len(sent) != 100 || worst > 5 {
		t.Fatalf("%d emails recorded sent, %d in one second: want 100, at most 5", len(sent), worst)
	}
}

// With a PSP that declines 30% of payments, every order ends confirmed or
// cancelled payment_failed, a declined order's units go back to stock, and
// no order is charged twice.
func TestDeclinedPaymentsReleaseStockAndNothingIsChargedTwice(t *testing.T) {
	s := startShopOn(t, devstack.Config{Dir: t.TempDir(), PSPFailureRate: 0.3, PSPLatency: time.Millisecond})
	pool := s.pool()
	customer, product := s.customer(), s.product(pool, 50)
	var ids []string
	for range 40 {
		code, body := s.order(customer, "card", product, 1)
		if code != http.StatusAccepted {
			t.Fatalf("order: %d %v", code, body)
		}
		ids = append(ids, body["id"].(string))
	}
	ends := map[string]int{}
	for _, id := range ids {
		o := s.waitOrder(id, 30*time.Second, func(o map[string]any) bool {
			return o["status"] == "confirmed" || o["status"] == "cancelled"
		})
		ends[fmt.Sprint(o["status"], " ", o["cancel_reason"])]++
		resp, err := http.Get(s.stack.Endpoints.CardPSPURL + "/charges?order_id=" + id)
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Charges []struct {
				Status string `json:"status"`
			} `json:"charges"`
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		charged := 0
		for _, c := range list.Charges {
			if c.Status == "succeeded" {
				charged++
			}
		}
		if err != nil || charged > 1 || (o["status"] == "confirmed") != (charged == 1) {
			t.Fatalf("order %s %v has %d charges (%v): want exactly one when confirmed, none otherwise", id, o["status"], charged, err)
		}
	}
	t.Logf("40 orders with 30%% of payments declined: %v", ends)
	confirmed, failed := ends["confirmed <nil>"], ends["cancelled payment_failed"]
	if confirmed+failed != 40 || failed == 0 {
		t.Fatalf("ends %v: want confirmed or cancelled payment_failed, some of each", ends)
	}
	var available int64
	if err := pool.QueryRow(context.Background(), `SELECT available FROM inventory.stock WHERE id = $1`, product).Scan(&available); err != nil || available != int64(50-confirmed) {
		t.Fatalf("available %d (%v), want 50 - %d confirmed", available, err, confirmed)
	}
}

// A poison record on shop.orders.v1 goes to its dead-letter topic, once
// per processor group that met it, with the error in its headers, and the
// orders after it still flow.
func TestPoisonOrderRecordIsDeadLetteredAndOrdersFlow(t *testing.T) {
	s := startShop(t, t.TempDir())
	pool := s.pool()
	customer, product := s.customer(), s.product(pool, 5)
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.stack.Endpoints.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The same key as the next order: the poison sits in its partition.
	code, placed := s.order(customer, "card", product, 1)
	if code != http.StatusAccepted {
		t.Fatalf("order: %d %v", code, placed)
	}
	poison := &kgo.Record{Topic: schemas.TopicOrders, Key: []byte(placed["id"].(string)), Value: []byte("not avro at all")}
	if err := cl.ProduceSync(context.Background(), poison).FirstErr(); err != nil {
		t.Fatal(err)
	}
	s.waitOrder(placed["id"].(string), 20*time.Second, func(o map[string]any) bool { return o["status"] == "confirmed" })
	code, after := s.order(customer, "sepa", product, 1)
	if code != http.StatusAccepted {
		t.Fatalf("order after the poison: %d %v", code, after)
	}
	s.waitOrder(after["id"].(string), 20*time.Second, func(o map[string]any) bool { return o["status"] == "confirmed" })
	dlq := schemas.TopicOrders + schemas.DLQSuffix
	deadline := time.Now().Add(10 * time.Second)
	for endOffsets(t, s.stack.Endpoints.Brokers, dlq)[dlq] < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d records, want the poison once per processor group (saga, billing)", dlq, endOffsets(t, s.stack.Endpoints.Brokers, dlq)[dlq])
		}
		time.Sleep(50 * time.Millisecond)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(s.stack.Endpoints.Brokers...), kgo.ConsumeTopics(dlq), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	groups := map[string]bool{}
	for len(groups) < 2 && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			if string(r.Value) != "not avro at all" || h["dlq_error"] == "" || h["dlq_topic"] != schemas.TopicOrders {
				t.Errorf("dead letter %q with headers %v", r.Value, h)
			}
			groups[h["dlq_group"]] = true
		})
	}
	t.Logf("dead-lettered by %v", groups)
	if !groups["shop.processor.saga.v1"] || !groups["shop.processor.billing.v1"] {
		t.Fatalf("dead letters from groups %v, want the saga's and billing's", groups)
	}
}

// A watcher of GET /products/{id}/events learns the stock at once, then
// that the product sold out the moment its last unit is reserved, then
// that it is back after a restock.
func TestSoldOutIsPushedToWatchers(t *testing.T) {
	s := startShop(t, t.TempDir())
	pool := s.pool()
	customer, product := s.customer(), s.product(pool, 1)
	s.waitProduct(product, func(map[string]any) bool { return true })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/products/"+product+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if name, ok := strings.CutPrefix(sc.Text(), "event: "); ok && sc.Scan() {
				events <- name + " " + strings.TrimPrefix(sc.Text(), "data: ")
			}
		}
		close(events)
	}()
	next := func(want string) string {
		t.Helper()
		select {
		case e := <-events:
			if !strings.HasPrefix(e, want+" ") {
				t.Fatalf("event %q, want %s", e, want)
			}
			return e
		case <-time.After(15 * time.Second):
			t.Fatalf("no %s event", want)
		}
		return ""
	}
	if e := next("stock"); !strings.Contains(e, `"stock":1`) {
		t.Fatalf("first event %s", e)
	}
	began := time.Now()
	if code, body := s.order(customer, "card", product, 1); code != http.StatusAccepted {
		t.Fatalf("order: %d %v", code, body)
	}
	next("sold_out")
	t.Logf("sold_out pushed %v after the order's 202", time.Since(began).Round(time.Millisecond))
	if code, body := s.post("/products/"+product+"/restock", `{"quantity": 3}`); code != http.StatusOK {
		t.Fatalf("restock: %d %v", code, body)
	}
	if e := next("restocked"); !strings.Contains(e, `"stock":3`) {
		t.Fatalf("restock event %s", e)
	}
	// The shop stops with the stream open: the server ends the stream
	// (EOF for the watcher) rather than waiting its 10 s shutdown
	// deadline, and Run returns once the requests in flight are done.
	stopped := time.Now()
	s.stop()
	took := time.Since(stopped)
	select {
	case e, open := <-events:
		if open {
			t.Fatalf("event %q after the stop, want the stream ended", e)
		}
	case <-time.After(time.Second):
		t.Fatal("the stream is still open after the shop stopped")
	}
	if took >= 8*time.Second {
		t.Errorf("the shop took %v to stop with a stream open: it waited for the shutdown deadline", took)
	}
	t.Logf("stopped in %v with a stream open; the watcher saw its end", took.Round(time.Millisecond))
}
