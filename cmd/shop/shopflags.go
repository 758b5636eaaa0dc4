package main

import (
	"flag"
	"fmt"

	"shopstream/internal/app"
)

// shopFlags are the flags of the shop's own behaviour, shared by `shop dev`
// and `shop run`.
type shopFlags struct {
	maxInFlight *int
	emailRate   *float64
	mailFrom    *string
}

func addShopFlags(fs *flag.FlagSet) *shopFlags {
	return &shopFlags{
		maxInFlight: fs.Int("max-inflight", app.DefaultMaxInFlight, "commands one instance runs at once; more are refused with 429 (load shedding)"),
		emailRate:   fs.Float64("email-rate", app.DefaultEmailRate, "emails per second the provider accepts, for all email senders together"),
		mailFrom:    fs.String("mail-from", app.DefaultMailFrom, "sender of the shop's emails"),
	}
}

// check names the flag that is out of range.
func (f *shopFlags) check() error {
	if *f.maxInFlight < 1 {
		return fmt.Errorf("--max-inflight %d: must be at least 1", *f.maxInFlight)
	}
	if *f.emailRate <= 0 {
		return fmt.Errorf("--email-rate %v: must be positive", *f.emailRate)
	}
	return nil
}

// apply copies the flags into cfg.
func (f *shopFlags) apply(cfg app.Config) app.Config {
	cfg.MaxInFlight = *f.maxInFlight
	cfg.EmailRate = *f.emailRate
	cfg.MailFrom = *f.mailFrom
	return cfg
}
