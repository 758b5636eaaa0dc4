package pspclient_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"shopstream/internal/devinfra/embedded/psp"
	"shopstream/processors/charging/pspclient"
)

// A charge refunded (twice: the second changes nothing) holds no money
// any more, also after the simulator restarts from its file; an unknown
// charge is rejected, a gateway that is down unavailable.
func TestRefund(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "card.jsonl")
	srv, err := psp.Start(ctx, psp.Config{File: file})
	if err != nil {
		t.Fatal(err)
	}
	c, err := pspclient.New(pspclient.Config{BaseURL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Charge(ctx, "k1", pspclient.ChargeRequest{OrderID: "o-1", AmountCents: 100, Currency: "EUR", Method: "card"})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Outstanding("o-1") != 1 {
		t.Fatalf("outstanding %d before the refund", srv.Outstanding("o-1"))
	}
	for range 2 {
		if err := c.Refund(ctx, res.ChargeID); err != nil {
			t.Fatal(err)
		}
	}
	if n, st := srv.Outstanding("o-1"), srv.Stats(); n != 0 || st.Refunds != 1 || st.Charges != 1 {
		t.Fatalf("outstanding %d, stats %+v", n, st)
	}
	if err := c.Refund(ctx, "ch_unknown"); !errors.Is(err, pspclient.ErrRejected) {
		t.Fatalf("unknown charge: %v", err)
	}
	addr := srv.Addr()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := srv.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Refund(ctx, res.ChargeID); !errors.Is(err, pspclient.ErrUnavailable) {
		t.Fatalf("gateway down: %v", err)
	}
	srv, err = psp.Start(ctx, psp.Config{File: file, Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(sctx)
	if n, st := srv.Outstanding("o-1"), srv.Stats(); n != 0 || st.Refunds != 1 || st.Charges != 1 {
		t.Fatalf("after a restart: outstanding %d, stats %+v", n, st)
	}
}
