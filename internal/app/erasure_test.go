package app_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/platform/pii"
	"shopstream/internal/testinfra/apiclient"
	"shopstream/internal/testinfra/kafkatest"
	"shopstream/projectors/orderviews"
	"shopstream/projectors/products"
	"shopstream/projectors/replay"
	"shopstream/schemas"
)

// GDPR erasure by crypto-shredding, as an outsider sees it: a customer's
// email and name reach Kafka only sealed under a key of its own (its
// invoice email still goes to the right address); DELETE /customers/{id}
// by the customer destroys the key, closes the account and appends
// CustomerErased, after which nothing in the log opens, every record
// still decodes, and a replay of the read models finds 0 differences.
func TestErasureShredsTheCustomersData(t *testing.T) {
	s := startShop(t, t.TempDir())
	ctx := context.Background()
	serde := s.replayConfig().Serde
	product := s.product(s.pool(), 5)
	c, err := apiclient.SignUp(ctx, s.base)
	if err != nil {
		t.Fatal(err)
	}
	other, err := apiclient.SignUp(ctx, s.base)
	if err != nil {
		t.Fatal(err)
	}
	code, _, b := s.do(http.MethodPost, "/orders", "application/json",
		fmt.Sprintf(`{"payment_method": "card", "items": [{"product_id": %q, "quantity": 1}]}`, product), "Authorization", "Bearer "+c.Token)
	if code != http.StatusAccepted {
		t.Fatalf("order: %d %s", code, b)
	}
	orderID := decodeBody(t, b)["id"].(string)
	s.waitOrder(orderID, 30*time.Second, func(o map[string]any) bool {
		inv, _ := o["invoice"].(map[string]any)
		return inv != nil && inv["emailed_at"] != nil
	})
	if mails := readMails(t, s.stack.Endpoints.MailDir); len(mails) != 1 || !strings.Contains(mails[0].To, c.Email) {
		t.Fatalf("the invoice email went to %v, want %s (the address revealed from its sealed form)", mails, c.Email)
	}

	// What the log holds of the customer: sealed fields and a key id.
	from := map[string]map[int32]kgo.Offset{schemas.TopicCustomers: {}, schemas.TopicEmails: {}}
	for _, topic := range []string{schemas.TopicCustomers, schemas.TopicEmails} {
		for p := range int32(schemas.DefaultPartitions) {
			from[topic][p] = kgo.NewOffset().AtStart()
		}
	}
	mine := func(r *kgo.Record) bool {
		return string(r.Key) == c.ID || string(r.Key) == orderID
	}
	records := kafkatest.ConsumeWhere(t, s.stack.Endpoints.Brokers, from, 3, 20*time.Second, mine) // signed up, email requested, sent
	keyID := "k-" + c.ID
	for _, r := range records {
		if bytes.Contains(r.Value, []byte(c.Email)) || bytes.Contains(r.Value, []byte("Fan")) {
			t.Errorf("%s record %s holds the customer's email or name in clear", r.Topic, r.Key)
		}
		ev, _, err := serde.Decode(ctx, r.Topic, r.Value)
		if err != nil {
			t.Fatal(err)
		}
		var sealed []string
		var key *string
		switch e := ev.(type) {
		case schemas.CustomerSignedUp:
			sealed, key = []string{e.Email, e.Name}, e.PIIKeyID
		case schemas.EmailRequested:
			sealed, key = []string{e.To}, e.PIIKeyID
		case schemas.EmailSent:
			sealed, key = []string{e.To}, e.PIIKeyID
		}
		for _, f := range sealed {
			if !pii.Sealed(f) || key == nil || *key != keyID {
				t.Errorf("%s: field %q under key %v, want sealed under %s", ev.EventType(), f, key, keyID)
			}
		}
	}

	// Another customer may not erase this one; the customer may, twice.
	if code, _, b := s.do(http.MethodDelete, "/customers/"+c.ID, "", "", "Authorization", "Bearer "+other.Token); code != http.StatusForbidden {
		t.Fatalf("another customer erases: %d %s, want 403", code, b)
	}
	for range 2 {
		if code, _, b := s.do(http.MethodDelete, "/customers/"+c.ID, "", "", "Authorization", "Bearer "+c.Token); code != http.StatusNoContent {
			t.Fatalf("erase: %d %s, want 204", code, b)
		}
	}
	erased := kafkatest.ConsumeWhere(t, s.stack.Endpoints.Brokers, from, 1, 20*time.Second, func(r *kgo.Record) bool {
		return string(r.Key) == c.ID && bytes.Contains(r.Value, []byte(keyID)) && !bytes.Contains(r.Value, []byte("pii:v1:"))
	})
	if ev, _, err := serde.Decode(ctx, erased[0].Topic, erased[0].Value); err != nil || ev.EventType() != (schemas.CustomerErased{}).EventType() {
		t.Fatalf("the erasure's record decodes as %v (%v), want CustomerErased", ev, err)
	}
	if n := kafkatest.CountWhere(t, s.stack.Endpoints.Brokers, from, 1, 2*time.Second, func(r *kgo.Record) bool {
		ev, _, err := serde.Decode(ctx, r.Topic, r.Value)
		return err == nil && string(r.Key) == c.ID && ev.EventType() == (schemas.CustomerErased{}).EventType()
	}); n != 1 {
		t.Errorf("%d CustomerErased records, want 1 (erasing again changes nothing)", n)
	}

	// The key is gone and so is the account: nothing opens, nobody logs in.
	var key []byte
	var destroyed *time.Time
	if err := s.pool().QueryRow(ctx, `SELECT key, destroyed_at FROM customers.pii_keys WHERE key_id = $1`, keyID).Scan(&key, &destroyed); err != nil || key != nil || destroyed == nil {
		t.Fatalf("key %s after erasure: %d bytes, destroyed at %v (%v), want none", keyID, len(key), destroyed, err)
	}
	var state string
	if err := s.pool().QueryRow(ctx, `SELECT state::text FROM customers.customers WHERE id = $1`, c.ID).Scan(&state); err != nil || strings.Contains(state, c.Email) {
		t.Fatalf("the write model still holds %q (%v)", state, err)
	}
	if _, err := apiclient.LogIn(ctx, s.base, c.Email, c.Password); err == nil {
		t.Fatal("the erased customer still logs in")
	}
	// Its token still verifies for its last minutes, but the account is
	// closed: no order, no cart.
	if code, _, b := s.do(http.MethodPost, "/orders", "application/json",
		fmt.Sprintf(`{"payment_method": "card", "items": [{"product_id": %q, "quantity": 1}]}`, product), "Authorization", "Bearer "+c.Token); code != http.StatusNotFound {
		t.Fatalf("an order by the erased customer's token: %d %s, want 404", code, b)
	}
	if code, _, b := s.do(http.MethodPost, "/carts/items", "application/json",
		fmt.Sprintf(`{"product_id": %q, "quantity": 1}`, product), "Authorization", "Bearer "+c.Token); code != http.StatusNotFound {
		t.Fatalf("a cart line by the erased customer's token: %d %s, want 404", code, b)
	}
	if _, err := apiclient.SignUp(ctx, s.base); err != nil { // the shop goes on
		t.Fatal(err)
	}

	// A replay of the read models from the log, ciphertexts and erasure
	// included, equals the live read models.
	cfg := s.replayConfig()
	for name, p := range map[string]func() (replay.Verification, error){
		"products": func() (replay.Verification, error) { return replay.Verify(ctx, products.Projection(), cfg) },
		"orders":   func() (replay.Verification, error) { return replay.Verify(ctx, orderviews.Projection(), cfg) },
	} {
		v, err := p()
		if err != nil {
			t.Fatal(err)
		}
		if v.Differences != 0 || v.Compared == 0 {
			t.Errorf("verify %s after erasure: %d differences of %d documents", name, v.Differences, v.Compared)
		}
		t.Logf("verify %s after erasure: %d documents, %d events, %d differences", name, v.Compared, v.Events, v.Differences)
	}
}
