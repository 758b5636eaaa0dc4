package main

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/app"
	"shopstream/internal/platform/kafkasec"
)

// `shop acls` prints a principal's grants and, with --apply and an admin's
// SASL credentials, creates exactly those on the cluster; the password is
// refused without its user, and a bad principal named by its flag.
func TestACLsCreatesExactlyTheComponentsGrants(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser(kafkasec.ScramSHA512, "admin", "admin-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := strings.Join(c.ListenAddrs(), ",")
	want := app.Grants([]string{app.Saga})
	out, _, err := runShop(t, nil, "acls", "--principal", "User:saga", "--components", "saga")
	if err != nil || strings.Count(out, "User:saga ALLOW") != len(want) {
		t.Fatalf("print: %v\n%s", err, out)
	}
	out, _, err = runShop(t, map[string]string{"SHOP_KAFKA_PASSWORD": "admin-secret"}, "acls", "--apply", "--principal", "User:saga",
		"--components", "saga", "--brokers", brokers, "--kafka-user", "admin")
	if err != nil || !strings.Contains(out, "created 5 ACLs for User:saga") {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	opts, _ := kafkasec.Security{User: "admin", Password: "admin-secret"}.Opts()
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(c.ListenAddrs()...))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	described, err := kadm.NewClient(cl).DescribeACLs(t.Context(), kadm.NewACLs().Allow("User:saga").AnyResource().
		ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny).AllowHosts())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range described {
		for _, a := range d.Described {
			got = append(got, a.Operation.String()+" "+a.Type.String()+" "+a.Name)
		}
	}
	if len(got) != len(want) || len(want) != 5 {
		t.Fatalf("ACLs of User:saga on the cluster: %v, want the %d of %v", got, len(want), want)
	}
	for _, bad := range [][]string{
		{"acls", "--principal", "saga", "--components", "saga"},
		{"acls", "--principal", "User:saga", "--components", "kitchen"},
		{"acls", "--principal", "User:saga", "--components", "saga", "--apply", "--brokers", brokers, "--kafka-password", "x"},
	} {
		if _, _, err := runShop(t, nil, bad...); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}
