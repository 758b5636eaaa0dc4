package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/app"
	"shopstream/internal/edge/gateway"
	"shopstream/processors/charging"
	"shopstream/processors/email"
	"shopstream/processors/invoicing"
	"shopstream/processors/saga"
	"shopstream/processors/stockfeed"
	"shopstream/projectors/orderviews"
	"shopstream/projectors/products"
	"shopstream/schemas"
)

// scrape reads GET /metrics of the HTTP server at base.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// sample is one series of a family: its labels and value (a histogram's
// sample count).
type sample struct {
	labels map[string]string
	value  float64
}

func samples(mfs map[string]*dto.MetricFamily, name string) []sample {
	var out []sample
	for _, m := range mfs[name].GetMetric() {
		s := sample{labels: map[string]string{}}
		for _, l := range m.GetLabel() {
			s.labels[l.GetName()] = l.GetValue()
		}
		switch {
		case m.Gauge != nil:
			s.value = m.GetGauge().GetValue()
		case m.Counter != nil:
			s.value = m.GetCounter().GetValue()
		case m.Histogram != nil:
			s.value = float64(m.GetHistogram().GetSampleCount())
		}
		out = append(out, s)
	}
	return out
}

// find is the value of name's series whose labels include want, and
// whether there is one.
func find(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	for _, s := range samples(mfs, name) {
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
			}
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

// Every family of the shop's dashboard is served on GET /metrics, with
// the labels it is drawn by, after an order has gone end to end: request
// durations by route pattern, the franz-go clients' metrics, consumer lag
// (which rises while the email quota holds a backlog, then drains),
// outbox backlog, projector checkpoint age (small once idle), the email
// counters and quotas, the breakers, and dead-letter topics (one fed a
// poison record). An instance without the gateway serves /metrics and
// /healthz too.
func TestMetricsCoverTheDashboard(t *testing.T) {
	const rate = 1 // emails per second: four emails make the email group lag for seconds
	s := startShop(t, t.TempDir(), func(c *app.Config) { c.EmailRate = rate })
	pool := s.pool()
	customer, product := s.customer(), s.product(pool, 10)

	// A poison record on the orders topic, for its dead-letter topic.
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.stack.Endpoints.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: schemas.TopicOrders, Key: []byte("poison"), Value: []byte("not avro")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var ids []string
	for i := range 4 {
		method := []string{"card", "sepa"}[i%2]
		code, placed := s.order(customer, method, product, 1)
		if code != http.StatusAccepted {
			t.Fatalf("order: %d %v", code, placed)
		}
		ids = append(ids, placed["id"].(string))
	}
	// While the emails wait for their quota slots, the email group lags.
	maxEmailLag := 0.0
	emailed := func(o map[string]any) bool {
		inv, _ := o["invoice"].(map[string]any)
		return o["status"] == "confirmed" && inv != nil && inv["emailed_at"] != nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for done := false; !done; {
		for _, smp := range samples(scrape(t, s.admin), "shop_consumer_lag") {
			if smp.labels["group"] == email.Group {
				maxEmailLag = max(maxEmailLag, smp.value)
			}
		}
		done = true
		for _, id := range ids {
			var o map[string]any
			if code, err := s.get("/orders/"+id, &o); code != http.StatusOK || err != nil || !emailed(o) {
				done = false
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("orders not all emailed after 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if maxEmailLag < 1 {
		t.Errorf("shop_consumer_lag of %s never above 0 while 4 emails waited for a %d/s quota", email.Group, rate)
	}
	s.do(http.MethodGet, "/orders/"+ids[0], "", "")
	s.do(http.MethodGet, "/no/such/route/"+ids[0], "", "")
	s.waitQuiet()
	time.Sleep(2 * time.Second) // idle: the projectors' checkpoints must stay fresh anyway
	mfs := scrape(t, s.admin)

	t.Run("http", func(t *testing.T) {
		routes := append(gateway.New(gateway.Deps{Logger: slog.New(slog.DiscardHandler)}).Routes(), "unmatched")
		for _, smp := range samples(mfs, "shop_http_request_duration_seconds") {
			if !slices.Contains(routes, smp.labels["route"]) || smp.labels["code"] == "" {
				t.Errorf("request duration series %v: route must be a pattern, code set", smp.labels)
			}
		}
		for _, want := range []map[string]string{
			{"route": "POST /orders", "code": "202"}, {"route": "GET /orders/{id}", "code": "200"}, {"route": "unmatched", "code": "404"},
		} {
			if n, ok := find(mfs, "shop_http_request_duration_seconds", want); !ok || n < 1 {
				t.Errorf("shop_http_request_duration_seconds%v: %v requests (present %v)", want, n, ok)
			}
		}
	})
	t.Run("kafka clients", func(t *testing.T) {
		if n, _ := find(mfs, "shop_produce_bytes_total", map[string]string{"client": app.OutboxRelay, "topic": schemas.TopicOrders}); n <= 0 {
			t.Errorf("shop_produce_bytes_total of the relay on %s: %v", schemas.TopicOrders, n)
		}
		for _, c := range []string{app.Saga, app.Billing, app.Email, app.PaymentsCard, app.PaymentsSepa, app.StockFeed, app.ProjectorOrders, app.ProjectorProducts} {
			if n, _ := find(mfs, "shop_fetch_bytes_total", map[string]string{"client": c}); n <= 0 {
				t.Errorf("shop_fetch_bytes_total{client=%q}: %v", c, n)
			}
		}
		if _, ok := find(mfs, "shop_buffered_produce_records_total", map[string]string{"client": app.OutboxRelay}); !ok {
			t.Error("no shop_buffered_produce_records_total of the relay")
		}
	})
	t.Run("consumer lag", func(t *testing.T) {
		groups := []string{saga.Group, invoicing.Group, email.Group, charging.CardGroup, charging.SepaGroup, stockfeed.Group,
			products.Projection().Group(), orderviews.Projection().Group()}
		for _, g := range groups {
			n := 0
			for _, smp := range samples(mfs, "shop_consumer_lag") {
				if smp.labels["group"] == g {
					n++
					if smp.labels["topic"] == "" || smp.labels["partition"] == "" {
						t.Errorf("lag series %v lacks topic or partition", smp.labels)
					}
					if smp.value != 0 {
						t.Errorf("lag %v of %v after the shop went quiet", smp.value, smp.labels)
					}
				}
			}
			if n == 0 {
				t.Errorf("no shop_consumer_lag series of group %s", g)
			}
		}
	})
	t.Run("outbox", func(t *testing.T) {
		if n, ok := find(mfs, "shop_outbox_backlog", map[string]string{"outbox": "outbox.records"}); !ok || n != 0 {
			t.Errorf("shop_outbox_backlog{outbox=outbox.records}: %v (present %v), want 0 once quiet", n, ok)
		}
	})
	t.Run("projectors", func(t *testing.T) {
		for _, p := range []string{"products", "orders"} {
			age, ok := find(mfs, "shop_projector_checkpoint_age_seconds", map[string]string{"projection": p})
			if !ok || age <= 0 || age > 1.5 {
				t.Errorf("checkpoint age of idle projection %s: %v s (present %v), want (0, 1.5]", p, age, ok)
			}
		}
	})
	t.Run("email", func(t *testing.T) {
		if n, _ := find(mfs, "shop_email_sent_total", nil); n < float64(len(ids)) {
			t.Errorf("shop_email_sent_total %v, want at least %d", n, len(ids))
		}
		for _, name := range []string{"shop_email_quota_per_second", "shop_email_group_quota_per_second"} {
			// One member owns every partition: its share is the whole quota.
			if q, _ := find(mfs, name, nil); q != rate {
				t.Errorf("%s %v, want %d", name, q, rate)
			}
		}
	})
	t.Run("breakers", func(t *testing.T) {
		for _, target := range []string{"card", "sepa"} {
			if st, ok := find(mfs, "shop_circuit_breaker_state", map[string]string{"target": target}); !ok || st != 0 {
				t.Errorf("breaker %s: state %v (present %v), want 0 closed", target, st, ok)
			}
		}
	})
	t.Run("dead letters", func(t *testing.T) {
		for _, spec := range schemas.Topics() {
			dlq := spec.Name + schemas.DLQSuffix
			n, ok := find(mfs, "shop_dlq_records", map[string]string{"topic": dlq})
			switch {
			case !ok:
				t.Errorf("no shop_dlq_records{topic=%q}", dlq)
			case spec.Name == schemas.TopicOrders && n < 2:
				t.Errorf("shop_dlq_records{topic=%q} %v: want the poison once per processor group at least (saga, billing)", dlq, n)
			case spec.Name != schemas.TopicOrders && n != 0:
				t.Errorf("shop_dlq_records{topic=%q} %v, want 0", dlq, n)
			}
		}
	})
	t.Run("instance without gateway", func(t *testing.T) {
		// A standby relay: it waits for the lock.
		base, admin := startInstanceWithAdmin(t, s.stack.Endpoints, []string{app.OutboxRelay}, nil)
		resp, err := http.Get(base + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz of an instance without gateway: %v %v", resp, err)
		}
		resp.Body.Close()
		resp, err = http.Get(base + "/orders/" + ids[0])
		if err != nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET /orders/{id} of an instance without gateway: %v %v, want 404", resp, err)
		}
		resp.Body.Close()
		if resp, err := http.Get(base + "/metrics"); err != nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET /metrics on the public port: %v %v, want 404 (it is the admin listener's)", resp, err)
		}
		m := scrape(t, admin)
		var families []string
		for name := range m {
			if strings.HasPrefix(name, "shop_") {
				families = append(families, name)
			}
		}
		slices.Sort(families)
		for _, want := range []string{"shop_outbox_backlog", "shop_consumer_lag", "shop_dlq_records", "shop_buffered_produce_records_total"} {
			if !slices.Contains(families, want) {
				t.Errorf("instance without gateway serves %v, lacking %s", families, want)
			}
		}
		if _, ok := m["shop_http_request_duration_seconds"]; ok {
			t.Error("instance without gateway serves gateway request metrics")
		}
		t.Logf("instance without gateway serves %s", fmt.Sprint(families))
	})
}
