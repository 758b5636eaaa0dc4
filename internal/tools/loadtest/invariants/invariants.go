// Package invariants checks the design invariants I1–I6 (ARCHITECTURE.md
// §6) of a shop after a load run, from the outside: what the shop accepted
// during the run, its event log, its read models, its payment simulators and
// its mailbox.
//
// Check reads (concurrently):
//   - every shop topic from its start to its end offsets at the time of the
//     call, once, into an Index (I1, I5, and I2/I3 when the payment gateways
//     or the mail relay are real ones);
//   - GET /charges of the card PSP and SEPA bank simulators (I2);
//   - the .eml files of the embedded SMTP server's mailbox (I3);
//   - a replay of the products and orders projections compared with their
//     live MongoDB collections (replay.Verify; I4);
//   - GET /orders/{id} of every accepted order (I6) and GET /products/{id}
//     of every accepted product (I5), 16 at a time.
//
// Check is a snapshot: it waits for nothing but the live projectors in I4
// (replay.Verify waits for their group to reach the log's head). The caller
// drains the pipeline first. It returns all six invariants, in order; a
// check that cannot run is a failed invariant whose Detail says why.
package invariants

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/plugin/kslog"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"shopstream/internal/devinfra/embedded/psp"
	"shopstream/internal/devinfra/embedded/smtpd"
	"shopstream/internal/edge/auth"
	"shopstream/internal/platform/docstore"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/tools/loadtest/report"
	"shopstream/projectors/readmodels"
	"shopstream/projectors/replay"
	"shopstream/schemas"
)

// Sources are where the checks read from.
type Sources struct {
	HTTP        string    // gateway base URL, e.g. http://127.0.0.1:8080 (GET /orders/{id}, GET /products/{id})
	StaffKey    string    // a staff API key: orders are read as staff
	Brokers     []string  // Kafka
	Kafka       []kgo.Opt // how to reach it beyond the brokers: SASL, TLS (kafkasec)
	RegistryURL string
	MongoURI    string
	MongoDB     string // database name, "shop" by default
	// CardPSPURL and SepaBankURL are the payment simulators' base URLs;
	// "" when unknown (a real PSP or bank): I2 then counts that method's
	// PaymentSucceeded events per order instead, and says so in Detail.
	CardPSPURL  string
	SepaBankURL string
	// MailDir is the embedded SMTP server's mailbox directory; "" when
	// unknown (a real SMTP relay): I3 then counts EmailSent events per
	// order instead, and says so.
	MailDir string
	// CrashResends is how many orders I3 lets have their invoice email
	// delivered twice with one Message-ID: SMTP has no exactly-once, and a
	// sender killed between the relay's 250 and its record sends again
	// after its restart (at most one email per crash: the quota's slots
	// keep the group to one send at a time). A fault test that SIGKILLs
	// the email sender n times sets n; copies with different Message-IDs
	// always fail.
	CrashResends int
	Logger       *slog.Logger // nil logs nothing
}

// Accepted is what the shop answered 2xx to during the run (ids from the
// answers' bodies, "id" field, or the Location header). An answer replayed
// for a repeated Idempotency-Key (header Idempotent-Replayed: true) is the
// same command and must not be counted again.
type Accepted struct {
	Customers []string
	Products  []string
	Reviews   []string // review ids
	Orders    []string
	CartAdds  map[[2]string]int // (customer id, product id) -> accepted POST /carts/items
}

// Concurrency is how many gateway reads Check has in flight at once.
const Concurrency = 16

// Check checks I1–I6 and returns them in order. It returns when every
// check has finished or ctx is done (the checks still running then fail,
// saying so).
func Check(ctx context.Context, src Sources, acc Accepted) []report.Invariant {
	log := src.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "invariants")
	began := time.Now()

	serde, serdeErr := newSerde(src.RegistryURL)
	hc := auth.StaffClient(src.StaffKey, nil)
	hc.Timeout = 15 * time.Second
	var (
		wg       sync.WaitGroup
		ix       *Index
		logErr   error
		verifies []verified
		orders   []orderRead
		prods    []productRead
		charges  map[string][]psp.Charge
		chargErr error
		mails    []smtpd.Mail
		mailErr  error
	)
	if serdeErr != nil {
		logErr = serdeErr
	} else {
		wg.Go(func() { ix, logErr = readLog(ctx, src.Brokers, src.Kafka, serde, log) })
		wg.Go(func() { verifies = verifyReadModels(ctx, src, serde, log) })
	}
	if src.HTTP != "" {
		wg.Go(func() { orders = readOrders(ctx, hc, src.HTTP, acc.Orders) })
		wg.Go(func() { prods = readProducts(ctx, hc, src.HTTP, acc.Products) })
	}
	wg.Go(func() { charges, chargErr = listCharges(ctx, hc, src.CardPSPURL, src.SepaBankURL) })
	if src.MailDir != "" {
		wg.Go(func() { mails, mailErr = smtpd.ReadMailbox(src.MailDir) })
	}
	wg.Wait()
	if logErr != nil {
		log.Warn("event log not read", "err", logErr)
	}

	out := make([]report.Invariant, 0, len(names))
	logMissing := "cannot read the event log: " + fmt.Sprint(logErr)

	// I1
	if logErr != nil {
		out = append(out, cannot(1, logMissing))
	} else {
		out = append(out, checkLost(ix, acc))
	}

	// I2: the log is needed only for a method without a simulator.
	switch {
	case chargErr != nil:
		out = append(out, cannot(2, chargErr.Error()))
	case len(charges) < 2 && logErr != nil:
		out = append(out, cannot(2, "a payment gateway is not a simulator, and "+logMissing))
	default:
		out = append(out, checkCharges(ix, charges))
	}

	// I3: the log is needed only without a mailbox.
	// A mailbox that cannot be read here (a shop on another host) falls
	// back to the EmailSent events, as a real relay does.
	switch {
	case mailErr != nil && logErr != nil:
		out = append(out, cannot(3, "read the mailbox: "+mailErr.Error()+"; and "+logMissing))
	case mailErr != nil:
		inv := checkEmails(ix, "", nil, 0)
		inv.Detail = "mailbox " + src.MailDir + " unreadable here (" + mailErr.Error() + "): " + inv.Detail
		out = append(out, inv)
	case src.MailDir == "" && logErr != nil:
		out = append(out, cannot(3, "no mailbox (a real SMTP relay), and "+logMissing))
	default:
		out = append(out, checkEmails(ix, src.MailDir, mails, src.CrashResends))
	}

	// I4
	if serdeErr != nil {
		out = append(out, cannot(4, serdeErr.Error()))
	} else {
		out = append(out, checkReadModels(verifies))
	}

	// I5
	switch {
	case logErr != nil:
		out = append(out, cannot(5, logMissing))
	case src.HTTP == "" && len(acc.Products) > 0:
		out = append(out, cannot(5, "no gateway URL to read the products' stock from"))
	default:
		out = append(out, checkStock(ix, prods))
	}

	// I6
	if src.HTTP == "" && len(acc.Orders) > 0 {
		out = append(out, cannot(6, "no gateway URL to read the orders from"))
	} else {
		out = append(out, checkTerminal(orders))
	}

	for _, inv := range out {
		log.Info("invariant", "id", inv.ID, "holds", inv.Holds, "checked", inv.Checked, "detail", inv.Detail)
	}
	log.Debug("invariants checked", "elapsed", time.Since(began))
	return out
}

// newSerde decodes with the registry at url and the built-in catalog.
func newSerde(url string) (*eventlog.Serde, error) {
	if url == "" {
		return nil, fmt.Errorf("no schema registry URL given")
	}
	cat, err := schemas.Load()
	if err != nil {
		return nil, err
	}
	rc, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		return nil, fmt.Errorf("schema registry %s: %w", url, err)
	}
	return eventlog.NewSerde(rc, cat), nil
}

// verifyReadModels runs replay.Verify for every read model (readmodels.Names),
// as `shop replay --verify` does, one after the other.
func verifyReadModels(ctx context.Context, src Sources, serde *eventlog.Serde, log *slog.Logger) []verified {
	type job struct {
		name   string
		verify func(context.Context, replay.Config) (replay.Verification, error)
	}
	var jobs []job
	for _, name := range readmodels.Names() {
		j, _ := readmodels.Lookup(name)
		jobs = append(jobs, job{name, j.Verify})
	}
	out := make([]verified, len(jobs))
	fail := func(err error) []verified {
		for i, j := range jobs {
			out[i] = verified{Name: j.name, Err: err}
		}
		return out
	}
	switch {
	case len(src.Brokers) == 0:
		return fail(fmt.Errorf("no Kafka brokers given"))
	case src.MongoURI == "":
		return fail(fmt.Errorf("no MongoDB URI given"))
	}
	mc, err := mongo.Connect(options.Client().ApplyURI(src.MongoURI).SetServerSelectionTimeout(15 * time.Second))
	if err != nil {
		return fail(fmt.Errorf("mongodb: %w", err))
	}
	defer mc.Disconnect(context.WithoutCancel(ctx)) //nolint:errcheck // nothing to do about it
	db := src.MongoDB
	if db == "" {
		db = "shop"
	}
	cfg := replay.Config{
		Kafka:  append([]kgo.Opt{kgo.SeedBrokers(src.Brokers...), kgo.WithLogger(kslog.New(log.With("component", "kafka-client")))}, src.Kafka...),
		Serde:  serde,
		Store:  docstore.New(mc.Database(db)),
		Logger: log,
	}
	for i, j := range jobs {
		v, err := j.verify(ctx, cfg)
		out[i] = verified{Name: j.name, V: v, Err: err}
	}
	return out
}
