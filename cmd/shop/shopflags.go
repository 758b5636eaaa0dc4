package main

import (
	"flag"

	"shopstream/internal/app"
)

// shopFlags are the flags of the shop's own behaviour, shared by `shop dev`
// and `shop run`.
type shopFlags struct {
	maxInFlight *int
}

func addShopFlags(fs *flag.FlagSet) *shopFlags {
	return &shopFlags{
		maxInFlight: fs.Int("max-inflight", app.DefaultMaxInFlight, "commands one instance runs at once; more are refused with 429 (load shedding)"),
	}
}

// apply copies the flags into cfg.
func (f *shopFlags) apply(cfg app.Config) app.Config {
	cfg.MaxInFlight = *f.maxInFlight
	return cfg
}
