package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"shopstream/internal/app"
	"shopstream/internal/devinfra/devshop"
	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/platform/eventlog"
	"shopstream/internal/platform/kafkasec"
	"shopstream/internal/testinfra/apiclient"
	"shopstream/internal/testinfra/kafkatest"
)

// selfSigned makes a CA and a certificate for 127.0.0.1 signed by it; it
// returns the server's TLS config and the CA's PEM file.
func selfSigned(t *testing.T) (*tls.Config, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shopstream test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kafka"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	caCert, _ := x509.ParseCertificate(caDER)
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, caFile
}

// aclsOf are the kfake ACLs of grants.
func aclsOf(grants []app.Grant) []kfake.ACL {
	var out []kfake.ACL
	for _, g := range grants {
		a := kfake.ACL{Name: g.Name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Allow: true, Resource: kmsg.ACLResourceTypeTopic}
		if g.Resource == "group" {
			a.Resource = kmsg.ACLResourceTypeGroup
		}
		a.Operation = map[string]kmsg.ACLOperation{"READ": kmsg.ACLOperationRead, "WRITE": kmsg.ACLOperationWrite}[g.Operation]
		out = append(out, a)
	}
	return out
}

// The whole shop over SASL/SCRAM-SHA-512 and TLS, on a broker with ACLs
// where each of three principals holds only the grants of its
// components (app.Grants): an order goes from placed to emailed. A
// principal lacking one grant makes its component fail at start, naming
// the ACL, within seconds; a plaintext client gets nowhere.
func TestComponentsRunWithOnlyTheirGrantsOverSASLSSL(t *testing.T) {
	serverTLS, caFile := selfSigned(t)
	principals := map[string][]string{
		"edge":       {app.Gateway, app.OutboxRelay},
		"processors": {app.StockFeed, app.Saga, app.PaymentsCard, app.PaymentsSepa, app.Billing, app.Email},
		"projectors": {app.ProjectorProducts, app.ProjectorOrders},
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.TLS(serverTLS), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser(kafkasec.ScramSHA512, "admin", "admin-secret")}
	for user, comps := range principals {
		opts = append(opts, kfake.User(kafkasec.ScramSHA512, user, user+"-secret", aclsOf(app.Grants(comps))...))
	}
	thin := slices.DeleteFunc(app.Grants([]string{app.ProjectorProducts}), func(g app.Grant) bool {
		return g == app.Grant{Resource: "topic", Name: "shop.reviews.v1", Operation: "READ"}
	})
	opts = append(opts, kfake.User(kafkasec.ScramSHA512, "thin", "thin-secret", aclsOf(thin)...))
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()
	secure := func(user string) kafkasec.Security {
		return kafkasec.Security{User: user, Password: user + "-secret", TLS: true, CAFile: caFile}
	}

	// The deployment creates the topics, as its admin (the components may
	// not): as `shop topics --create` or Strimzi would.
	adminOpts, err := secure("admin").Opts()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kgo.NewClient(append(adminOpts, kgo.SeedBrokers(brokers...))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	if err := eventlog.EnsureTopics(t.Context(), kadm.NewClient(admin), 1); err != nil {
		t.Fatal(err)
	}
	// A plaintext client does not get in.
	plain, _ := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DialTimeout(2*time.Second))
	pctx, pcancel := context.WithTimeout(t.Context(), 3*time.Second)
	if _, err := kadm.NewClient(plain).ListTopics(pctx); err == nil {
		t.Error("a plaintext client listed the topics of the SASL_SSL broker")
	}
	pcancel()
	plain.Close()

	log := slog.New(slog.NewTextHandler(testLogOutput(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	stack, err := devstack.Start(t.Context(), devstack.Config{Dir: t.TempDir(), Brokers: brokers, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stack.Stop(context.Background()) })
	run := func(user string, comps []string) (string, error) { return startAs(t, stack, log, secure(user), comps) }

	// The principal without READ on the reviews topic: a clear error.
	began := time.Now()
	if _, err := run("thin", []string{app.ProjectorProducts}); true {
		if !errors.Is(err, app.ErrMissingGrant) || !strings.Contains(err.Error(), "ALLOW READ on topic shop.reviews.v1") ||
			!strings.Contains(err.Error(), "principal thin") {
			t.Fatalf("projector-products without its READ on the reviews topic: %v, want the missing ACL named", err)
		}
		t.Logf("refused in %v: %v", time.Since(began).Round(time.Millisecond), err)
	}

	var base string
	for user, comps := range principals {
		addr, err := run(user, comps)
		if err != nil {
			t.Fatalf("%s (%v) stopped at start: %v", user, comps, err)
		}
		if slices.Contains(comps, app.Gateway) {
			base = addr
		}
	}
	s := &shop{t: t, base: base, stack: stack, client: apiclient.Staff(stack.Secrets.StaffKey)}
	product := s.product(s.pool(), 3)
	c, err := apiclient.SignUp(t.Context(), base)
	if err != nil {
		t.Fatal(err)
	}
	code, _, b := s.do(http.MethodPost, "/orders", "application/json",
		fmt.Sprintf(`{"payment_method": "sepa", "items": [{"product_id": %q, "quantity": 1}]}`, product), "Authorization", "Bearer "+c.Token)
	if code != http.StatusAccepted {
		t.Fatalf("order: %d %s", code, b)
	}
	o := s.waitOrder(decodeBody(t, b)["id"].(string), 40*time.Second, func(o map[string]any) bool {
		inv, _ := o["invoice"].(map[string]any)
		return o["status"] == "confirmed" && inv != nil && inv["emailed_at"] != nil
	})
	t.Logf("over SASL_SSL with least privilege: order %s %s, invoice %v", o["id"], o["status"], o["invoice"])
}

// On the real Apache Kafka of CI, through its SASL_SSL listener (SCRAM-
// SHA-512 over TLS, StandardAuthorizer; deploy/kafka/kafka.sh): the edge
// components (gateway and outbox relay) run as a principal holding only
// their grants (app.ACLs, as `shop acls --apply` creates them) and publish
// a registration; a principal without grants is refused at start, naming
// the ACL; a client without credentials gets nowhere.
func TestRealBrokerComponentsUseTheirACLsOverSASLSSL(t *testing.T) {
	saslAddr, caFile, plainAddr := os.Getenv("SHOP_TEST_KAFKA_SASL_SSL"), os.Getenv("SHOP_TEST_KAFKA_CA_FILE"), os.Getenv("SHOP_TEST_KAFKA_BROKERS")
	switch {
	case plainAddr == "":
		t.Skip("SHOP_TEST_KAFKA_BROKERS is unset: the real broker's SASL_SSL listener is tested in CI (.ci/run, deploy/kafka/kafka.sh)")
	case saslAddr == "" || caFile == "":
		t.Fatal("SHOP_TEST_KAFKA_BROKERS is set without SHOP_TEST_KAFKA_SASL_SSL and SHOP_TEST_KAFKA_CA_FILE: export every line of `deploy/kafka/kafka.sh env`")
	}
	ctx := t.Context()
	// The broker's admin: ANONYMOUS on the PLAINTEXT listener is a super
	// user there (the deployment's admin).
	admCl, err := kgo.NewClient(kgo.SeedBrokers(plainAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admCl.Close)
	adm := kadm.NewClient(admCl)
	if err := eventlog.EnsureTopics(ctx, adm, 1); err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprint(time.Now().UnixNano())
	edge, bare := "shop-edge-"+suffix, "shop-bare-"+suffix
	for _, u := range []string{edge, bare} {
		res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: u, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: u + "-secret"}})
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			t.Fatalf("SCRAM user %s: %v", u, err)
		}
	}
	edgeComps := []string{app.Gateway, app.OutboxRelay}
	for _, acl := range app.ACLs("User:"+edge, app.Grants(edgeComps)) {
		if res, err := adm.CreateACLs(ctx, acl); err != nil || res[0].Err != nil {
			t.Fatalf("create ACL: %v %v", err, res)
		}
	}
	t.Cleanup(func() {
		_, _ = adm.DeleteACLs(context.Background(), kadm.NewACLs().Allow("User:"+edge).AnyResource().
			ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny).AllowHosts())
		_, _ = adm.AlterUserSCRAMs(context.Background(), []kadm.DeleteSCRAM{{User: edge, Mechanism: kadm.ScramSha512}, {User: bare, Mechanism: kadm.ScramSha512}}, nil)
	})
	secure := func(user string) kafkasec.Security {
		return kafkasec.Security{User: user, Password: user + "-secret", TLS: true, CAFile: caFile}
	}

	// No credentials on the SASL_SSL listener: nothing.
	plain, _ := kgo.NewClient(kgo.SeedBrokers(saslAddr), kgo.DialTimeout(2*time.Second))
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	if _, err := kadm.NewClient(plain).ListTopics(pctx); err == nil {
		t.Error("a client without TLS or credentials listed the topics on the SASL_SSL listener")
	}
	pcancel()
	plain.Close()

	log := slog.New(slog.NewTextHandler(testLogOutput(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	stack, err := devstack.Start(ctx, devstack.Config{Dir: t.TempDir(), Brokers: []string{saslAddr}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stack.Stop(context.Background()) })
	start := func(user string, comps []string) (string, error) { return startAs(t, stack, log, secure(user), comps) }
	if _, err := start(bare, []string{app.OutboxRelay}); !errors.Is(err, app.ErrMissingGrant) || !strings.Contains(err.Error(), "ALLOW WRITE on topic") {
		t.Fatalf("a principal without grants: %v, want refused at start naming the ACL", err)
	} else {
		t.Logf("refused: %v", err)
	}
	base, err := start(edge, edgeComps)
	if err != nil {
		t.Fatalf("the edge principal with its grants: %v", err)
	}
	ends, err := adm.ListEndOffsets(ctx, "shop.catalog.products.v1")
	if err != nil {
		t.Fatal(err)
	}
	s := &shop{t: t, base: base, stack: stack, client: apiclient.Staff(stack.Secrets.StaffKey)}
	code, body := s.post("/products", `{"title": "Maillot SASL", "price_cents": 100, "quantity": 1}`)
	if code != http.StatusCreated {
		t.Fatalf("register: %d %v", code, body)
	}
	from := map[string]map[int32]kgo.Offset{"shop.catalog.products.v1": {}}
	ends.Each(func(o kadm.ListedOffset) { from[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset) })
	recs := kafkatest.ConsumeWhere(t, []string{plainAddr}, from, 1, 20*time.Second, func(r *kgo.Record) bool { return string(r.Key) == body["id"] })
	t.Logf("the relay, as %s over SASL_SSL with %d grants, published %s at offset %d", edge, len(app.Grants(edgeComps)), recs[0].Key, recs[0].Offset)
}

// startAs runs comps on stack with Kafka security sec, as the process of
// one principal, and returns its address once ready, or the error it
// stopped with at start. It stops at the end of the test.
func startAs(t *testing.T, stack *devstack.Stack, log *slog.Logger, sec kafkasec.Security, comps []string) (string, error) {
	t.Helper()
	cfg := devshop.Config(stack.Endpoints, stack.Secrets, "127.0.0.1:0", log)
	cfg.Components, cfg.Kafka, cfg.AdminAddr = comps, sec, ""
	ready := make(chan string, 1)
	cfg.OnReady = func(addr, _ string) { ready <- addr }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg) }()
	select {
	case addr := <-ready:
		t.Cleanup(func() { cancel(); <-done })
		return "http://" + addr, nil
	case err := <-done:
		cancel()
		return "", err
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("%s (%v) not ready in 60 s", sec.User, comps)
	}
	return "", nil
}
