package main

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"shopstream/internal/app"
	"shopstream/processors/saga"
)

func TestPaymentTimeoutFlags(t *testing.T) {
	parse := func(args ...string) (app.Config, error) {
		fs := flag.NewFlagSet("shop", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f := addShopFlags(fs)
		if err := fs.Parse(args); err != nil {
			return app.Config{}, err
		}
		return f.apply(app.Config{}), f.check()
	}
	cfg, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PaymentTimeout != saga.DefaultPaymentTimeout || cfg.SepaTimeout != saga.DefaultSepaTimeout {
		t.Errorf("defaults give %v and %v", cfg.PaymentTimeout, cfg.SepaTimeout)
	}
	if cfg, err = parse("--payment-timeout", "3s", "--sepa-timeout", "5s"); err != nil {
		t.Fatal(err)
	}
	if cfg.PaymentTimeout != 3*time.Second || cfg.SepaTimeout != 5*time.Second {
		t.Errorf("--payment-timeout 3s --sepa-timeout 5s give %v and %v", cfg.PaymentTimeout, cfg.SepaTimeout)
	}
	for _, name := range []string{"payment-timeout", "sepa-timeout"} {
		if _, err := parse("--"+name, "0s"); err == nil || !strings.Contains(err.Error(), "--"+name) {
			t.Errorf("--%s 0s: error %v, want one naming the flag", name, err)
		}
	}
}
