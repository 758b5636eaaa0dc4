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
	"sync"
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
	// run starts an instance of comps as user; it returns its address
	// ("" when it stopped at start) and its error once stopped.
	run := func(user string, comps []string) (string, func() error) {
		cfg := devshop.Config(stack.Endpoints, stack.Secrets, "127.0.0.1:0", log)
		cfg.Components, cfg.Kafka, cfg.AdminAddr = comps, secure(user), ""
		ready := make(chan string, 1)
		cfg.OnReady = func(addr, _ string) { ready <- addr }
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- app.Run(ctx, cfg) }()
		stopped := sync.OnceValue(func() error { return <-done })
		t.Cleanup(func() { cancel(); _ = stopped() })
		select {
		case addr := <-ready:
			return "http://" + addr, stopped
		case err := <-done:
			done <- err // for stopped
			return "", stopped
		case <-time.After(60 * time.Second):
			t.Fatalf("%s (%v) not ready in 60 s", user, comps)
		}
		return "", stopped
	}

	// The principal without READ on the reviews topic: a clear error.
	began := time.Now()
	if _, stopped := run("thin", []string{app.ProjectorProducts}); true {
		err := stopped()
		if !errors.Is(err, app.ErrMissingGrant) || !strings.Contains(err.Error(), "ALLOW READ on topic shop.reviews.v1") ||
			!strings.Contains(err.Error(), "principal thin") {
			t.Fatalf("projector-products without its READ on the reviews topic: %v, want the missing ACL named", err)
		}
		t.Logf("refused in %v: %v", time.Since(began).Round(time.Millisecond), err)
	}

	var base string
	for user, comps := range principals {
		addr, stopped := run(user, comps)
		if addr == "" {
			t.Fatalf("%s (%v) stopped at start: %v", user, comps, stopped())
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
