package devstack

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Secrets are a dev shop's credentials: the secret its tokens are signed
// with, a staff API key, and the demo customer `shop dev` signs up. They
// are made once per data directory and kept in secrets.json (mode 0600),
// so that a restarted shop keeps accepting what it handed out; they are
// never in endpoints.json nor served over HTTP.
type Secrets struct {
	TokenSecret  string `json:"token_secret"`
	StaffKey     string `json:"staff_key"`
	DemoEmail    string `json:"demo_email"`
	DemoPassword string `json:"demo_password"`
}

const secretsFile = "secrets.json"

// LoadSecrets reads dir's secrets, making and saving them the first time.
func LoadSecrets(dir string) (Secrets, error) {
	path := filepath.Join(dir, secretsFile)
	b, err := os.ReadFile(path)
	if err == nil {
		var s Secrets
		if err := json.Unmarshal(b, &s); err != nil || s.TokenSecret == "" || s.StaffKey == "" {
			return Secrets{}, fmt.Errorf("%s: unreadable (%v); remove it to make new secrets", path, err)
		}
		return s, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Secrets{}, err
	}
	s := Secrets{TokenSecret: random(32), StaffKey: "sk_dev_" + random(24), DemoEmail: "demo@shopstream.dev", DemoPassword: "demo-" + random(12)}
	b, _ = json.MarshalIndent(s, "", "  ")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Secrets{}, err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return Secrets{}, fmt.Errorf("save secrets: %w", err)
	}
	return s, nil
}

// ReadSecrets reads the secrets of a data directory a `shop dev` or
// `shop infra` made.
func ReadSecrets(dir string) (Secrets, error) {
	b, err := os.ReadFile(filepath.Join(dir, secretsFile))
	if err != nil {
		return Secrets{}, fmt.Errorf("no secrets in %s (is a shop dev running there?): %w", dir, err)
	}
	var s Secrets
	if err := json.Unmarshal(b, &s); err != nil {
		return Secrets{}, fmt.Errorf("%s: %w", filepath.Join(dir, secretsFile), err)
	}
	return s, nil
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
