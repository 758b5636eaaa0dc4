package devstack_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"shopstream/internal/devinfra/devstack"
)

// CheckAddrs finds a taken fixed address and names its server; free ports
// (zero values, port 0) are never checked; PostgreSQL's port held by a
// server left running on the same data directory is Start's to shut down.
func TestCheckAddrs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken, port := ln.Addr().String(), ln.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	if err := devstack.CheckAddrs(devstack.Config{Dir: dir, KafkaAddr: "127.0.0.1:0", PostgresPort: 0}); err != nil {
		t.Errorf("free ports: %v", err)
	}
	for _, c := range []struct {
		cfg    devstack.Config
		server string
	}{
		{devstack.Config{Dir: dir, KafkaAddr: taken}, devstack.ServerKafka},
		{devstack.Config{Dir: dir, RegistryAddr: taken}, devstack.ServerRegistry},
		{devstack.Config{Dir: dir, MongoAddr: taken}, devstack.ServerMongo},
		{devstack.Config{Dir: dir, PostgresPort: port}, devstack.ServerPostgres},
		{devstack.Config{Dir: dir, CardPSPAddr: taken}, devstack.ServerCardPSP},
		{devstack.Config{Dir: dir, SepaBankAddr: taken}, devstack.ServerSepaBank},
		{devstack.Config{Dir: dir, SMTPAddr: taken}, devstack.ServerSMTP},
	} {
		var ae *devstack.AddrError
		if err := devstack.CheckAddrs(c.cfg); !errors.As(err, &ae) || ae.Server != c.server || !ae.InUse() || ae.Addr != taken {
			t.Errorf("%s on a taken port: %v, want an AddrError in use on %s", c.server, err, taken)
		}
	}
	// A real cluster named by Brokers: the embedded broker's address is
	// not listened on, so not checked.
	if err := devstack.CheckAddrs(devstack.Config{Dir: dir, KafkaAddr: taken, Brokers: []string{"kafka:9092"}}); err != nil {
		t.Errorf("Kafka's address with Brokers given: %v, want none (no broker starts)", err)
	}
	// A postmaster.pid of this dir on that port: a stale server of ours.
	pgdata := filepath.Join(dir, "postgres", "pgdata")
	if err := os.MkdirAll(pgdata, 0o755); err != nil {
		t.Fatal(err)
	}
	pid := "4242\n" + pgdata + "\n1733230000\n" + strconv.Itoa(port) + "\n\n127.0.0.1\n"
	if err := os.WriteFile(filepath.Join(pgdata, "postmaster.pid"), []byte(pid), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := devstack.CheckAddrs(devstack.Config{Dir: dir, PostgresPort: port}); err != nil {
		t.Errorf("postgres port held by this dir's own server: %v, want none", err)
	}
	if err := devstack.CheckAddrs(devstack.Config{Dir: dir, PostgresPort: port + 1, KafkaAddr: "nonsense"}); err == nil {
		t.Error("a malformed address is no error")
	}
}
