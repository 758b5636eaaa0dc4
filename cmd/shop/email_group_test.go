package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/devinfra/embedded/smtpd"
	"shopstream/internal/platform/pgdb"
	"shopstream/internal/testinfra/kafkatest"
	"shopstream/internal/testinfra/latency"
	"shopstream/processors/email"
	"shopstream/processors/email/quota"
	"shopstream/schemas"

	"shopstream/internal/testinfra/testenv"
)

// Email quota (issue 4) across processes, on real Apache Kafka: two `shop
// run --components=email --email-rate 5` children share the email group;
// 100 orders give 100 emails, no duplicate, no one-second window with more
// than 5 sends (by the senders' clock, EmailSent.SentAt), and both
// instances send their share.
//
// The broker is shared with other tests and keeps its topics and the
// processors' group offsets between runs, so the test counts only the
// orders it placed (each run has its own PostgreSQL, so every send recorded
// there is one of this run's children, and all of them count against the
// quota). The children are stopped with SIGTERM so that they leave their
// groups: a SIGKILLed member would hold its partitions in the next run's
// groups for a session timeout.
func TestEmailQuotaHoldsAcrossTwoInstances(t *testing.T) {
	testenv.Slow(t, "builds the shop binary, 100 emails at 5 per second on real Kafka, about 30 s")
	brokers := kafkatest.RealBrokers(t)
	kafkatest.Exclusive(t, brokers)
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const orders, rate = 100, 5
	kafkatest.EnsureTopics(t, brokers)
	from := kafkatest.From(t, brokers, schemas.TopicEmails) // this run's emails come after
	partitions := len(from[schemas.TopicEmails])
	if partitions < 2 {
		t.Fatalf("%s has %d partitions: two members cannot share it", schemas.TopicEmails, partitions)
	}

	dir := t.TempDir()
	e := startStack(ctx, t, devstack.Config{Dir: dir})
	e.Brokers = secureChildren(t, brokers) // the embedded kfake stays idle
	pool, err := pgdb.Connect(ctx, e.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	bin := buildShop(t)

	front := startRun(t, bin, e, "gateway,outbox-relay,stockfeed,saga,payments-card,payments-sepa,billing,projector-products,projector-orders")
	senders := []*shopRun{
		startRunWith(t, bin, e, "email", "--log-level", "info", "--email-rate", strconv.Itoa(rate)),
		startRunWith(t, bin, e, "email", "--log-level", "info", "--email-rate", strconv.Itoa(rate)),
	}
	t.Cleanup(func() { stopGracefully(t, append([]*shopRun{front}, senders...)...) }) // runs before startRun's SIGKILLs
	t.Logf("stack, binary and children ready in %s", time.Since(began).Round(time.Millisecond))

	// Both senders in the group, sharing every partition, before any order.
	settle := time.Now()
	for {
		owned := make([][]int32, len(senders))
		all := map[int32]int{}
		for i, s := range senders {
			owned[i] = ownedAt(emailOwnership(s.out.String(), i), time.Now().Add(time.Hour))
			for _, p := range owned[i] {
				all[p]++
			}
		}
		if len(owned[0]) > 0 && len(owned[1]) > 0 && len(all) == partitions {
			t.Logf("email group settled in %s: instance 0 owns %v, instance 1 owns %v",
				time.Since(settle).Round(time.Millisecond), owned[0], owned[1])
			break
		}
		if time.Since(settle) > 40*time.Second {
			t.Fatalf("email group not shared after 40 s: instance 0 owns %v, instance 1 owns %v\n--- instance 0:\n%s\n--- instance 1:\n%s",
				owned[0], owned[1], senders[0].out, senders[1].out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	customer, product := groupCustomer(t, front), groupProduct(t, front, pool, orders)
	ours := map[string]bool{}
	var ids []string
	for i := range orders {
		code, body, err := post(front.client, front.base+"/orders",
			fmt.Sprintf(`{"customer_id": %q, "payment_method": "card", "items": [{"product_id": %q, "quantity": 1}]}`, customer, product))
		var placed struct{ ID string }
		if err == nil {
			err = json.Unmarshal(body, &placed)
		}
		if err != nil || code != http.StatusAccepted || placed.ID == "" {
			t.Fatalf("order %d: %d %s %v", i, code, body, err)
		}
		ours[placed.ID] = true
		ids = append(ids, placed.ID)
	}
	placedAt := time.Now()
	t.Logf("customer, product and %d orders placed in %s", orders, placedAt.Sub(settle).Round(time.Millisecond))

	// Every order emailed, as PostgreSQL records it.
	for deadline := time.Now().Add(90 * time.Second); ; {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM notifications.emails WHERE id = ANY($1) AND state ? 'sent_at'`, ids).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == orders {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d orders emailed 90 s after they were placed\n--- front:\n%s\n--- instance 0:\n%s\n--- instance 1:\n%s",
				n, orders, front.out, senders[0].out, senders[1].out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d orders emailed %s after the last was placed", orders, time.Since(placedAt).Round(time.Millisecond))
	time.Sleep(time.Second) // a duplicate would show up now

	// The mailbox: one message per order, no duplicate.
	perID, received, receivedAt := groupMailbox(t, filepath.Join(dir, "mail"))
	files, dups := 0, 0
	for _, id := range ids {
		n := perID["<"+email.MessageID(id)+">"]
		files += n
		switch {
		case n == 0:
			t.Errorf("order %s has no email in the mailbox", id)
		case n > 1:
			dups += n - 1
			t.Errorf("order %s was emailed %d times", id, n)
		}
	}

	// The senders' clock: when each send started, as EmailSent records it.
	// Every send of this run counts against the quota, ours or not.
	rows, err := pool.Query(ctx, `SELECT id, (state->>'sent_at')::timestamptz FROM notifications.emails WHERE state ? 'sent_at'`)
	if err != nil {
		t.Fatal(err)
	}
	type sent struct {
		Order string
		At    time.Time
	}
	all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[sent])
	if err != nil {
		t.Fatal(err)
	}
	var times []time.Time
	for _, s := range all {
		times = append(times, s.At)
	}
	worst, worstReceived := quota.MostInWindow(times, time.Second), quota.MostInWindow(received, time.Second)
	// How long from a send's start to the SMTP server's acceptance: its
	// jitter is what the pacer's margin must absorb for the provider's
	// clock to see the quota kept too.
	var latencies []time.Duration
	for _, s := range all {
		if r, ok := receivedAt["<"+email.MessageID(s.Order)+">"]; ok {
			latencies = append(latencies, r.Sub(s.At))
		}
	}
	if lat := latency.Sort(latencies); len(lat) > 0 {
		t.Logf("send start → SMTP acceptance: min %v, median %v, p90 %v, max %v; shortest span of %d sends: %v by the senders' clock, %v by the SMTP server's",
			lat[0].Round(time.Microsecond), lat.At(50).Round(time.Microsecond), lat.At(90).Round(time.Microsecond),
			lat[len(lat)-1].Round(time.Microsecond), rate+1, shortestSpan(times, rate+1).Round(time.Microsecond), shortestSpan(received, rate+1).Round(time.Microsecond))
	}

	// Who sent what: the partition of each order's email records, and the
	// instance that owned that partition when the send started.
	partOf := emailPartitions(t, brokers, from, ours)
	owners := [][]ownership{emailOwnership(senders[0].out.String(), 0), emailOwnership(senders[1].out.String(), 1)}
	per := make([][]time.Time, len(senders))
	unattributed := 0
	for _, s := range all {
		if !ours[s.Order] {
			continue
		}
		p, ok := partOf[s.Order]
		who := -1
		if ok {
			for i := range senders {
				if slices.Contains(ownedAt(owners[i], s.At), p) {
					who = i
				}
			}
		}
		if who < 0 {
			unattributed++
			continue
		}
		per[who] = append(per[who], s.At)
	}

	// The rate while the whole group had a backlog: from the first send
	// to the moment the first instance ran out of work.
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	var groupRate, busyRate float64
	busyEnd := time.Time{}
	for i := range per {
		sort.Slice(per[i], func(a, b int) bool { return per[i][a].Before(per[i][b]) })
		if len(per[i]) > 0 && (busyEnd.IsZero() || per[i][len(per[i])-1].Before(busyEnd)) {
			busyEnd = per[i][len(per[i])-1]
		}
	}
	if span := times[len(times)-1].Sub(times[0]); span > 0 {
		groupRate = float64(len(times)-1) / span.Seconds()
	}
	busy := 0
	for _, at := range times {
		if !at.After(busyEnd) {
			busy++
		}
	}
	if span := busyEnd.Sub(times[0]); span > 0 {
		busyRate = float64(busy-1) / span.Seconds()
	}
	for i := range per {
		r := 0.0
		if n := len(per[i]); n > 1 {
			r = float64(n-1) / per[i][n-1].Sub(per[i][0]).Seconds()
		}
		t.Logf("instance %d: %d emails (%.2f/s), partitions %v at the end", i, len(per[i]), r, ownedAt(owners[i], time.Now()))
	}
	t.Logf("%d distinct Message-IDs in the mailbox; %d emails of our %d orders (%d duplicates); %d sends recorded in all (%d unattributed to an instance); "+
		"sent over %v: %.2f/s overall, %.2f/s while both instances had a backlog (%d sends; quota %d/s, pacer target %.2f/s); "+
		"at most %d sends in any 1 s window (%d by the SMTP server's clock)",
		len(perID), files, orders, dups, len(all), unattributed, times[len(times)-1].Sub(times[0]).Round(time.Millisecond),
		groupRate, busyRate, busy, rate, rate/(1+quota.DefaultMargin), worst, worstReceived)

	if files != orders || dups != 0 {
		t.Fatalf("%d emails for %d orders, %d duplicates: want one each", files, orders, dups)
	}
	if worst > rate {
		t.Fatalf("%d sends within one second by the senders' clock: the quota is %d", worst, rate)
	}
	// The provider counts by its own clock: the message reaches it one
	// write and one round trip after the slot (the conversation runs up to
	// DATA before), so the pacer's 70 ms of margin covers the jitter.
	if worstReceived > rate {
		t.Fatalf("%d messages within one second by the SMTP server's clock: the quota is %d", worstReceived, rate)
	}
	if len(per[0]) == 0 || len(per[1]) == 0 || len(per[0])+len(per[1]) != orders {
		t.Fatalf("instance 0 sent %d, instance 1 sent %d, %d unattributed: want both to send, %d in all", len(per[0]), len(per[1]), unattributed, orders)
	}
	if busyRate < 4 {
		t.Fatalf("%.2f emails/s while the group had a backlog: want at least 4 of the quota's %d", busyRate, rate)
	}
	t.Logf("took %s", time.Since(began).Round(time.Millisecond))
}

// startRunWith starts `shop run --components=components` against e, with
// extra flags (a repeated flag's last value wins), its HTTP (metrics and
// health) on a free port, and waits for its ready line.
func startRunWith(t *testing.T, bin string, e devstack.Endpoints, components string, extra ...string) *shopRun {
	t.Helper()
	cmd := exec.Command(bin, append(runArgs(e, components, "127.0.0.1:0"), extra...)...)
	p := &shopRun{cmd: cmd, out: &testenv.LockedBuffer{}, exited: make(chan error, 1), client: staffClient(nil)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	if !p.waitOutput("shop run ready", 60*time.Second) {
		t.Fatalf("shop run --components=%s not ready:\n%s", components, p.out)
	}
	return p
}

// stopGracefully sends SIGTERM to the children that run and waits for them
// to exit, so that they commit and leave their consumer groups.
func stopGracefully(t *testing.T, ps ...*shopRun) {
	t.Helper()
	for _, p := range ps {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(20 * time.Second)
	for i, p := range ps {
		select {
		case err := <-p.exited:
			p.exited <- err
		case <-deadline:
			t.Errorf("child %d still running 20 s after SIGTERM (it will be killed):\n%s", i, p.out)
			return
		}
	}
}

func groupCustomer(t *testing.T, c *shopRun) string {
	t.Helper()
	return created(t, c.client, c.base+"/customers", `{"email": "quota@example.org", "name": "Quota", "password": "a password for the tests"}`)
}

// created POSTs body to url and returns the id of what the 201 created.
func created(t *testing.T, c *http.Client, url, body string) string {
	t.Helper()
	code, answer, err := post(c, url, body)
	var made struct{ ID string }
	if err == nil {
		err = json.Unmarshal(answer, &made)
	}
	if err != nil || code != http.StatusCreated || made.ID == "" {
		t.Fatalf("POST %s: %d %s %v", url, code, answer, err)
	}
	return made.ID
}

// groupProduct registers a product and waits until the inventory has its
// units.
func groupProduct(t *testing.T, c *shopRun, pool *pgxpool.Pool, quantity int) string {
	t.Helper()
	id := created(t, c.client, c.base+"/products", fmt.Sprintf(`{"title": "Maillot", "price_cents": 2500, "quantity": %d}`, quantity))
	for deadline := time.Now().Add(20 * time.Second); ; {
		var n int64
		err := pool.QueryRow(context.Background(), `SELECT available FROM inventory.stock WHERE id = $1`, id).Scan(&n)
		if err == nil && n == int64(quantity) {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("inventory never received product %s (%v, %d)\n%s", id, err, n, c.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// groupMailbox counts the mailbox's messages per Message-ID and returns
// when the SMTP server received each, in all and per Message-ID (the
// last).
func groupMailbox(t *testing.T, dir string) (map[string]int, []time.Time, map[string]time.Time) {
	t.Helper()
	mails, err := smtpd.ReadMailbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	var received []time.Time
	at := map[string]time.Time{}
	for _, m := range mails {
		ids[m.MessageID]++
		received = append(received, m.Received)
		if m.Received.After(at[m.MessageID]) {
			at[m.MessageID] = m.Received
		}
	}
	return ids, received, at
}

// shortestSpan is the shortest time between the first and the last of n
// consecutive times: under a second, they fit in one 1 s window.
func shortestSpan(times []time.Time, n int) time.Duration {
	times = slices.Clone(times)
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	best := time.Duration(-1)
	for i := n - 1; i < len(times); i++ {
		if d := times[i].Sub(times[i-n+1]); best < 0 || d < best {
			best = d
		}
	}
	return best
}

// ownership is one partition of the emails topic owned by one instance
// from a time until another (zero: still owned).
type ownership struct {
	instance  int
	partition int32
	from, to  time.Time
}

var (
	ownershipLine = regexp.MustCompile(`^time=(\S+) .*msg="partitions (assigned|released)".* group=` +
		regexp.QuoteMeta(email.Group) + ` partitions="?map\[(.*)\]"?$`)
	emailsPartitions = regexp.MustCompile(regexp.QuoteMeta(schemas.TopicEmails) + `:\[([0-9 ]*)\]`)
)

// emailOwnership reads an email child's log (at level info) into the
// partitions it owned and when: the consumer logs "partitions assigned"
// before any handler runs for them and "partitions released" after the
// last one returned.
func emailOwnership(log string, instance int) []ownership {
	var out []ownership
	open := map[int32]int{} // partition → index in out
	for _, line := range strings.Split(log, "\n") {
		m := ownershipLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		pm := emailsPartitions.FindStringSubmatch(m[3])
		if pm == nil {
			continue
		}
		for _, f := range strings.Fields(pm[1]) {
			n, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				continue
			}
			p := int32(n)
			if m[2] == "assigned" {
				if _, ok := open[p]; !ok {
					open[p] = len(out)
					out = append(out, ownership{instance: instance, partition: p, from: at})
				}
			} else if i, ok := open[p]; ok {
				out[i].to = at
				delete(open, p)
			}
		}
	}
	return out
}

// ownedAt lists the partitions owned at a time.
func ownedAt(spans []ownership, at time.Time) []int32 {
	var out []int32
	for _, s := range spans {
		if !at.Before(s.from) && (s.to.IsZero() || at.Before(s.to)) && !slices.Contains(out, s.partition) {
			out = append(out, s.partition)
		}
	}
	slices.Sort(out)
	return out
}

// emailPartitions reads the emails topic from the offsets in from to its
// current end, and returns the partition of each key in keys.
func emailPartitions(t *testing.T, brokers []string, from map[string]map[int32]kgo.Offset, keys map[string]bool) map[string]int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(kafkatest.Client(t, brokers)).ListEndOffsets(ctx, schemas.TopicEmails)
	if err != nil {
		t.Fatal(err)
	}
	end := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset })
	start := map[int32]kgo.Offset{}
	left := 0
	for p, o := range from[schemas.TopicEmails] {
		start[p] = o
		if end[p] > o.EpochOffset().Offset {
			left++
		}
	}
	cl := kafkatest.Client(t, brokers, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{schemas.TopicEmails: start}))
	out := map[string]int32{}
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s not read to its end offsets %v in 20 s", schemas.TopicEmails, end)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= end[r.Partition] {
				return
			}
			if keys[string(r.Key)] {
				out[string(r.Key)] = r.Partition
			}
			if r.Offset == end[r.Partition]-1 {
				left--
			}
		})
	}
	return out
}
