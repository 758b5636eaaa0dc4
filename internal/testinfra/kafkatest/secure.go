package kafkatest

import (
	"context"
	"os"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"shopstream/internal/platform/kafkasec"
)

// The real broker's SASL_SSL listener (SCRAM-SHA-512 over TLS, with ACLs)
// and the CA its certificate chains to, as `deploy/kafka/kafka.sh env`
// prints them.
const (
	EnvSASLSSL = "SHOP_TEST_KAFKA_SASL_SSL"
	EnvCAFile  = "SHOP_TEST_KAFKA_CA_FILE"
)

// Admin is the real broker's super user on its SASL_SSL listener
// (kafka.sh's super.users); [SecureUser] gives it its password.
const Admin = "admin"

// SecureUser makes (or updates) the SCRAM-SHA-512 user name on the real
// broker through its PLAINTEXT listener plain, whose ANONYMOUS is the
// deployment's admin, grants it acls (nil: none; [Admin] needs none), and
// returns the SASL_SSL listener's address and the security a client of
// that user needs. Without SHOP_TEST_KAFKA_SASL_SSL and
// SHOP_TEST_KAFKA_CA_FILE it fails t: a real broker without its secure
// listener is a misconfigured run.
func SecureUser(t testing.TB, plain []string, name string, acls *kadm.ACLBuilder) ([]string, kafkasec.Security) {
	t.Helper()
	addr, ca := os.Getenv(EnvSASLSSL), os.Getenv(EnvCAFile)
	if addr == "" || ca == "" {
		t.Fatalf("%s is set without %s and %s: export every line of `deploy/kafka/kafka.sh env`", EnvBrokers, EnvSASLSSL, EnvCAFile)
	}
	ctx := context.Background()
	adm := kadm.NewClient(Client(t, plain))
	password := name + "-test-secret"
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: name, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: password}})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("SCRAM user %s: %v", name, err)
	}
	if acls != nil {
		results, err := adm.CreateACLs(ctx, acls)
		if err != nil {
			t.Fatalf("ACLs of %s: %v", name, err)
		}
		for _, r := range results {
			if r.Err != nil {
				t.Fatalf("ACL %s %s on %s %s: %v", r.Operation, r.Permission, r.Type, r.Name, r.Err)
			}
		}
	}
	return []string{addr}, kafkasec.Security{User: name, Password: password, TLS: true, CAFile: ca}
}

// Flags are sec as the shop's command-line flags.
func Flags(sec kafkasec.Security) []string {
	return []string{"--kafka-user", sec.User, "--kafka-password", sec.Password, "--kafka-tls", "--kafka-ca-file", sec.CAFile}
}
