package devstack

import (
	"os"
	"path/filepath"
	"testing"
)

// The files that hold credentials are the owner's only.
func TestCredentialFilesAreTheOwnersOnly(t *testing.T) {
	dir := t.TempDir()
	if err := WriteEndpoints(dir, Endpoints{PostgresURL: "postgres://shop:pw@127.0.0.1:5432/shop"}); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSecrets(dir)
	if err != nil || len(s.TokenSecret) < 32 || s.StaffKey == "" || s.DemoPassword == "" {
		t.Fatalf("secrets %+v, %v", s, err)
	}
	again, err := LoadSecrets(dir)
	if err != nil || again != s {
		t.Fatalf("secrets made again: %+v, %v; want the first ones kept", again, err)
	}
	for _, f := range []string{endpointsFile, secretsFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, fi, err)
		}
	}
}
