// Package kafkasec is how every Kafka client of the shop authenticates
// and encrypts: SASL (SCRAM-SHA-512 by default, SCRAM-SHA-256 or PLAIN)
// over TLS, set once per process (flags --kafka-user, --kafka-password,
// --kafka-sasl-mechanism, --kafka-tls, --kafka-ca-file) and applied to
// the relay's producer, the consumer groups, the admin client and the
// tools alike.
//
// Guarantees: a password never prints (String masks it); PLAIN is refused
// without TLS, since it would send the password in clear; a CA file that
// holds no certificate is an error at start, not a failed handshake later.
package kafkasec

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The SASL mechanisms.
const (
	ScramSHA512 = "SCRAM-SHA-512"
	ScramSHA256 = "SCRAM-SHA-256"
	Plain       = "PLAIN"
)

// Security is a client's authentication and encryption. The zero value
// is a plain connection, as to a development broker.
type Security struct {
	User, Password string
	Mechanism      string // "" is ScramSHA512 when User is set
	TLS            bool
	CAFile         string // PEM roots the broker's certificate must chain to; "" is the system's
}

// Enabled reports whether s asks for anything beyond a plain connection.
func (s Security) Enabled() bool { return s.User != "" || s.TLS }

// String describes s without its password.
func (s Security) String() string {
	if !s.Enabled() {
		return "plaintext"
	}
	var parts []string
	if s.User != "" {
		parts = append(parts, fmt.Sprintf("SASL %s as %s (password xxxxx)", s.mechanism(), s.User))
	}
	if s.TLS {
		parts = append(parts, "TLS"+map[bool]string{true: " (CA " + s.CAFile + ")", false: ""}[s.CAFile != ""])
	}
	return strings.Join(parts, " over ")
}

func (s Security) mechanism() string {
	if s.Mechanism == "" {
		return ScramSHA512
	}
	return strings.ToUpper(s.Mechanism)
}

// Opts are the franz-go options of s.
func (s Security) Opts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if s.User != "" {
		if s.Password == "" {
			return nil, errors.New("kafka: a SASL user needs its password (--kafka-password)")
		}
		var m sasl.Mechanism
		switch s.mechanism() {
		case ScramSHA512:
			m = scram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism()
		case ScramSHA256:
			m = scram.Auth{User: s.User, Pass: s.Password}.AsSha256Mechanism()
		case Plain:
			if !s.TLS {
				return nil, errors.New("kafka: SASL PLAIN sends the password in clear: use it with --kafka-tls")
			}
			m = plain.Auth{User: s.User, Pass: s.Password}.AsMechanism()
		default:
			return nil, fmt.Errorf("kafka: SASL mechanism %q: want %s, %s or %s (--kafka-sasl-mechanism)", s.Mechanism, ScramSHA512, ScramSHA256, Plain)
		}
		opts = append(opts, kgo.SASL(m))
	} else if s.Password != "" {
		return nil, errors.New("kafka: a password without a user (--kafka-user)")
	}
	if s.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.CAFile != "" {
			pem, err := os.ReadFile(s.CAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka: CA file (--kafka-ca-file): %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka: CA file %s (--kafka-ca-file) holds no PEM certificate", s.CAFile)
			}
			cfg.RootCAs = pool
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	} else if s.CAFile != "" {
		return nil, errors.New("kafka: a CA file without --kafka-tls")
	}
	return opts, nil
}
