package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/devinfra/embedded/smtpd"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/pgdb"
	"shopstream/internal/testinfra/kafkatest"
	"shopstream/internal/testinfra/testenv"
	"shopstream/schemas"
)

// The saga, payment, billing and email processors run in a child process
// that is SIGKILLed while 30 orders are in flight: after restarts,
// every order is confirmed and emailed, none is charged twice, and each
// email's Message-ID reaches the mailbox (a resend after a kill between
// the SMTP server's acceptance and the EmailSent record keeps its
// Message-ID, and is counted).
//
// On the embedded Kafka the processors are killed once: two kills in a row
// leave a dead member that kfake never evicts from a cooperative group
// (seen here: the survivor keeps half of the email partitions' slots
// unserved). On real Apache Kafka (SHOP_TEST_KAFKA_BROKERS, as in CI),
// which evicts a silent member after the processors' 10 s session
// timeout, they are killed three times.

func TestCrashKillProcessorsLosesNoOrder(t *testing.T) {
	testenv.Slow(t, "builds the shop binary and SIGKILLs its processors, about 20 s")
	if b := os.Getenv(kafkatest.EnvBrokers); b != "" {
		kafkatest.Exclusive(t, strings.Split(b, ","))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	e := startStack(ctx, t, devstack.Config{Dir: dir, PSPLatency: 20 * time.Millisecond})
	killRounds := 1
	if b := os.Getenv(kafkatest.EnvBrokers); b != "" {
		e.Brokers, killRounds = secureChildren(t, strings.Split(b, ",")), 3
		t.Logf("on Apache Kafka at %s: %d kills", b, killRounds)
	}
	bin := buildShop(t)
	front := startRun(t, bin, e, "gateway,outbox-relay,stockfeed,projector-products,projector-orders")
	const workers = "saga,payments-card,payments-sepa,billing,email"
	back := startRun(t, bin, e, workers)

	code, body, err := post(front.client, front.base+"/customers", `{"email": "fan@example.org", "name": "Fan", "password": "a password for the tests"}`)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("sign up: %d %s %v", code, body, err)
	}
	var created struct{ ID string }
	_ = json.Unmarshal(body, &created)
	customer := created.ID
	pool, err := pgdb.Connect(ctx, e.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// Orders wait until the inventory holds the units (on a fresh broker
	// the stock feed's group takes seconds to join).
	product := groupProduct(t, front, pool, 100)
	var orders []string
	for i := range 30 {
		method := []string{"card", "sepa"}[i%2]
		code, body, err := post(front.client, front.base+"/orders",
			fmt.Sprintf(`{"customer_id": %q, "payment_method": %q, "items": [{"product_id": %q, "quantity": 1}]}`, customer, method, product))
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("order %d: %d %s %v", i, code, body, err)
		}
		_ = json.Unmarshal(body, &created)
		orders = append(orders, created.ID)
	}
	for round := range killRounds {
		time.Sleep(time.Duration(400+300*round) * time.Millisecond)
		back.kill(t)
		back = startRun(t, bin, e, workers)
	}
	emailed := 0
	deadline := time.Now().Add(90 * time.Second)
	for _, id := range orders {
		for {
			resp, err := front.client.Get(front.base + "/orders/" + id)
			var o struct {
				Status  string
				Invoice *struct {
					EmailedAt *time.Time `json:"emailed_at"`
				}
			}
			if err == nil {
				_ = json.NewDecoder(resp.Body).Decode(&o)
				resp.Body.Close()
			}
			if o.Status == "confirmed" && o.Invoice != nil && o.Invoice.EmailedAt != nil {
				emailed++
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s: status %q, invoice %+v after the kills\n%s", id, o.Status, o.Invoice, back.out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// No order charged twice, by either provider.
	for _, url := range []string{e.CardPSPURL, e.SepaBankURL} {
		resp, err := http.Get(url + "/charges")
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Charges []struct {
				OrderID string `json:"order_id"`
				Status  string `json:"status"`
			} `json:"charges"`
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		per := map[string]int{}
		for _, c := range list.Charges {
			if c.Status == "succeeded" {
				per[c.OrderID]++
			}
		}
		for order, n := range per {
			if n > 1 || err != nil {
				t.Fatalf("order %s charged %d times at %s (%v)", order, n, url, err)
			}
		}
	}
	mails, err := smtpd.ReadMailbox(filepath.Join(dir, "mail"))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, m := range mails {
		ids[m.MessageID]++
	}
	for _, id := range orders {
		if ids["<invoice-"+id+"@shopstream>"] == 0 {
			t.Fatalf("order %s has no email in the mailbox", id)
		}
	}
	t.Logf("30 orders through %d SIGKILLs of %s: %d confirmed and emailed, %d emails, %d distinct Message-IDs (%d resent)",
		killRounds, workers, emailed, len(mails), len(ids), len(mails)-len(ids))
	if len(ids) != 30 {
		t.Fatalf("%d distinct Message-IDs, want 30", len(ids))
	}
	if strings.Count(front.out.String(), "panic") > 0 {
		t.Fatalf("front panicked:\n%s", front.out)
	}
}

// A saga process SIGKILLed while payments are pending, and restarted after
// their deadline: the restarted process fires each deadline, once. The
// payments are never answered (no payments component runs), so only the
// deadline can end the orders: each is cancelled payment_timeout, its
// units released exactly once (one StockReleased per order on the stock
// topic), and its deadline marked fired.
func TestCrashKillSagaFiresPendingDeadlinesOnce(t *testing.T) {
	testenv.Slow(t, "builds the shop binary and SIGKILLs its saga with deadlines pending, about 20 s")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := startStack(ctx, t, devstack.Config{Dir: t.TempDir()})
	bin := buildShop(t)
	front := startRun(t, bin, e, "gateway,outbox-relay,stockfeed,projector-products,projector-orders")
	t.Setenv("SHOP_PAYMENT_TIMEOUT", "3s") // read by the saga processes started below
	back := startRun(t, bin, e, "saga")

	customer := groupCustomer(t, front)
	pool, err := pgdb.Connect(ctx, e.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	product := groupProduct(t, front, pool, 20)
	var created struct{ ID string }
	from := kafkatest.From(t, e.Brokers, schemas.TopicStock)
	const n = 5
	var orders []string
	for i := range n {
		code, body, err := post(front.client, front.base+"/orders",
			fmt.Sprintf(`{"customer_id": %q, "payment_method": "card", "items": [{"product_id": %q, "quantity": 2}]}`, customer, product))
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("order %d: %d %s %v", i, code, body, err)
		}
		_ = json.Unmarshal(body, &created)
		orders = append(orders, created.ID)
	}
	// Every order's deadline is recorded, pending: then the saga dies.
	testenv.WaitFor(t, 30*time.Second, "the saga records every order's deadline", func() bool {
		var pending int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM saga.deadlines WHERE order_id = ANY($1) AND fired_at IS NULL`, orders).Scan(&pending)
		return err == nil && pending == n
	})
	back.kill(t)
	time.Sleep(4 * time.Second) // past every deadline, with no saga running
	back = startRun(t, bin, e, "saga")

	for _, id := range orders {
		testenv.WaitFor(t, 60*time.Second, "order "+id+" cancelled", func() bool {
			resp, err := front.client.Get(front.base + "/orders/" + id)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var o struct {
				Status       string
				CancelReason string `json:"cancel_reason"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&o)
			if o.Status == "cancelled" && o.CancelReason != "payment_timeout" {
				t.Fatalf("order %s cancelled for %q, want payment_timeout", id, o.CancelReason)
			}
			return o.Status == "cancelled"
		})
	}
	var fired int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM saga.deadlines WHERE order_id = ANY($1) AND fired_at IS NOT NULL`, orders).Scan(&fired); err != nil || fired != n {
		t.Fatalf("%d deadlines fired (%v), want %d", fired, err, n)
	}
	released := func(r *kgo.Record) bool {
		for _, h := range r.Headers {
			if h.Key == eventlog.HeaderType && string(h.Value) == "shop.inventory.StockReleased" {
				return true
			}
		}
		return false
	}
	if got := kafkatest.CountWhere(t, e.Brokers, from, n, 3*time.Second, released); got != n {
		t.Fatalf("%d StockReleased after the restart, want %d: one per order", got, n)
	}
	var available int64
	if err := pool.QueryRow(ctx, `SELECT available FROM inventory.stock WHERE id = $1`, product).Scan(&available); err != nil || available != 20 {
		t.Fatalf("available %d (%v), want the 20 units back", available, err)
	}
	t.Logf("%d orders pending when the saga was killed: after its restart, %d deadlines fired, %d StockReleased, %d units available", n, fired, n, available)
}
