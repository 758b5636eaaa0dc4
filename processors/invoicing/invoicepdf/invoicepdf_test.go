package invoicepdf_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"shopstream/processors/invoicing/invoicepdf"
	"shopstream/processors/invoicing/invoicepdf/pdftest"
)

func sample() invoicepdf.Invoice {
	return invoicepdf.Invoice{
		Number:   "INV-2024-000042",
		OrderID:  "7f7c3d1e-5b2a-4c41-9d7e-1a2b3c4d5e6f",
		IssuedAt: time.Date(2024, 11, 29, 9, 30, 0, 0, time.UTC),
		Customer: invoicepdf.Customer{
			ID:    "368c748f-d636-4acb-a632-d5257ffb0764",
			Name:  "Zinédine Zidane",
			Email: "zizou@example.org",
		},
		Lines: []invoicepdf.Line{
			{ProductID: "p-1", Title: "Maillot de l'OM 93", Quantity: 1, UnitPriceCents: 8999},
			{ProductID: "p-2", Title: "Écharpe « Allez l'OM »", Quantity: 2, UnitPriceCents: 1250},
			{ProductID: "p-3", Title: "Ballon officiel 北京 😀", Quantity: 1, UnitPriceCents: 123456},
		},
		Currency:      "EUR",
		TotalCents:    8999 + 2*1250 + 123456,
		PaymentMethod: "card",
	}
}

func render(t *testing.T, inv invoicepdf.Invoice) []byte {
	t.Helper()
	doc, err := invoicepdf.Render(inv)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return doc
}

func TestRenderProducesPDF(t *testing.T) {
	doc := render(t, sample())
	if !bytes.HasPrefix(doc, []byte("%PDF-1.")) {
		t.Fatalf("no %%PDF header: %q", doc[:min(len(doc), 16)])
	}
	if !bytes.HasSuffix(bytes.TrimRight(doc, "\r\n"), []byte("%%EOF")) {
		t.Fatalf("no %%%%EOF trailer: %q", doc[max(0, len(doc)-16):])
	}
	if n := bytes.Count(doc, []byte("/Type /Page\n")); n != 1 {
		t.Fatalf("%d pages, want one", n)
	}
	if len(doc) < 1000 {
		t.Fatalf("suspiciously small PDF: %d bytes", len(doc))
	}
	// The creation date comes from IssuedAt, not the clock.
	if !bytes.Contains(doc, []byte("/CreationDate (D:20241129093000)")) {
		t.Fatalf("creation date is not IssuedAt")
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	first := render(t, sample())
	time.Sleep(1100 * time.Millisecond) // a clock-derived date would now differ
	again := render(t, sample())
	if !bytes.Equal(first, again) {
		t.Fatalf("same invoice rendered twice differs (%d vs %d bytes)", len(first), len(again))
	}

	// The same instant in another time zone is the same invoice.
	inv := sample()
	inv.IssuedAt = inv.IssuedAt.In(time.FixedZone("CET", 3600))
	if !bytes.Equal(first, render(t, inv)) {
		t.Fatal("IssuedAt in another zone renders differently")
	}

	// Concurrent renders (each its own translator) agree too.
	const n = 4
	out := make(chan []byte, n)
	for range n {
		go func() {
			doc, _ := invoicepdf.Render(sample())
			out <- doc
		}()
	}
	for range n {
		if !bytes.Equal(first, <-out) {
			t.Fatal("concurrent render differs")
		}
	}

	// And the output does depend on the invoice.
	other := sample()
	other.Number = "INV-2024-000043"
	if bytes.Equal(first, render(t, other)) {
		t.Fatal("another invoice number renders the same bytes")
	}
}

func TestRenderRejectsInvalidInvoices(t *testing.T) {
	cases := map[string]func(*invoicepdf.Invoice){
		"no lines":          func(i *invoicepdf.Invoice) { i.Lines = nil },
		"negative price":    func(i *invoicepdf.Invoice) { i.Lines[0].UnitPriceCents = -1; i.TotalCents -= 9000 },
		"zero quantity":     func(i *invoicepdf.Invoice) { i.Lines[0].Quantity = 0; i.TotalCents -= 8999 },
		"negative quantity": func(i *invoicepdf.Invoice) { i.Lines[0].Quantity = -1; i.TotalCents -= 2 * 8999 },
		"negative total":    func(i *invoicepdf.Invoice) { i.TotalCents = -1 },
		"wrong total":       func(i *invoicepdf.Invoice) { i.TotalCents++ },
		"no number":         func(i *invoicepdf.Invoice) { i.Number = " " },
		"no order":          func(i *invoicepdf.Invoice) { i.OrderID = "" },
		"long order id":     func(i *invoicepdf.Invoice) { i.OrderID = strings.Repeat("7", 65) },
		"no customer":       func(i *invoicepdf.Invoice) { i.Customer.ID = "" },
		"no date":           func(i *invoicepdf.Invoice) { i.IssuedAt = time.Time{} },
		"bad currency":      func(i *invoicepdf.Invoice) { i.Currency = "euro" },
		"bad utf8":          func(i *invoicepdf.Invoice) { i.Lines[1].Title = "\xff" },
		"huge title":        func(i *invoicepdf.Invoice) { i.Lines[1].Title = strings.Repeat("x", 501) },
		"unnamed line":      func(i *invoicepdf.Invoice) { i.Lines[1].ProductID, i.Lines[1].Title = "", "" },
		"overflow": func(i *invoicepdf.Invoice) {
			i.Lines = []invoicepdf.Line{{ProductID: "p", Quantity: 3, UnitPriceCents: 1 << 62}}
			i.TotalCents = 0
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			inv := sample()
			inv.Lines = append([]invoicepdf.Line(nil), inv.Lines...)
			mutate(&inv)
			doc, err := invoicepdf.Render(inv)
			if !errors.Is(err, invoicepdf.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if doc != nil {
				t.Fatal("output returned with an error")
			}
		})
	}
	// Free items and an empty currency (EUR) are fine.
	inv := sample()
	inv.Currency = ""
	inv.Lines = append(inv.Lines, invoicepdf.Line{ProductID: "gift", Quantity: 1})
	if _, err := invoicepdf.Render(inv); err != nil {
		t.Fatalf("valid invoice refused: %v", err)
	}
}

func TestFormatCents(t *testing.T) {
	for _, c := range []struct {
		cents    int64
		currency string
		want     string
	}{
		{8999, "EUR", "89,99 €"},
		{0, "", "0,00 €"},
		{5, "EUR", "0,05 €"},
		{123456, "EUR", "1 234,56 €"},
		{100000000, "EUR", "1 000 000,00 €"},
		{-1250, "EUR", "-12,50 €"},
		{1200, "USD", "12,00 USD"},
		{-9223372036854775808, "EUR", "-92 233 720 368 547 758,08 €"},
	} {
		if got := invoicepdf.FormatCents(c.cents, c.currency); got != c.want {
			t.Errorf("FormatCents(%d, %q) = %q, want %q", c.cents, c.currency, got, c.want)
		}
	}
}

// TestRenderWithPoppler renders page 1 to a PNG and extracts the text with
// poppler-utils (apt-get install poppler-utils), which CI installs.
func TestRenderWithPoppler(t *testing.T) {
	inv := sample()
	doc := render(t, inv)
	checkPage1(t, doc)

	text := pdftest.Text(t, doc)
	for _, want := range []string{
		"shopstream", "INVOICE", inv.Number, inv.OrderID, "2024-11-29",
		"Zinédine Zidane", "zizou@example.org", inv.Customer.ID, "card",
		"Maillot de l'OM 93", "Écharpe « Allez l'OM »", "Ballon officiel ?? ?",
		"89,99 €", "12,50 €", "25,00 €", "1 234,56 €",
		"Total (EUR)", invoicepdf.FormatCents(inv.TotalCents, "EUR"), "Page 1/1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("pdftotext output lacks %q:\n%s", want, text)
		}
	}
}

// TestRenderManyLinesContinuesOnNextPage: a long order does not lose lines
// off the bottom of the page.
func TestRenderManyLinesContinuesOnNextPage(t *testing.T) {
	inv := sample()
	inv.Lines = nil
	inv.TotalCents = 0
	for i := range 70 {
		inv.Lines = append(inv.Lines, invoicepdf.Line{
			ProductID: fmt.Sprint("p-", i), Title: fmt.Sprintf("Article numéro %02d", i),
			Quantity: 1, UnitPriceCents: int64(100 + i),
		})
		inv.TotalCents += int64(100 + i)
	}
	// A title far too long for its column is shortened, not overflowing.
	inv.Lines[0].Title = strings.Repeat("Très long titre ", 30)
	doc := render(t, inv)
	if n := bytes.Count(doc, []byte("/Type /Page\n")); n != 3 {
		t.Fatalf("%d pages, want 3", n)
	}
	text := pdftest.Text(t, doc)
	for i := 1; i < 70; i++ {
		if want := fmt.Sprintf("Article numéro %02d", i); !strings.Contains(text, want) {
			t.Fatalf("line %q missing:\n%s", want, text)
		}
	}
	for _, want := range []string{"Page 1/3", "Page 3/3", "Très long titre Très long titre", "...",
		invoicepdf.FormatCents(inv.TotalCents, "EUR")} {
		if !strings.Contains(text, want) {
			t.Errorf("pdftotext output lacks %q:\n%s", want, text)
		}
	}
	if strings.Count(text, "Description") != 3 {
		t.Errorf("table header not repeated on each of 3 pages:\n%s", text)
	}
}

// checkPage1 renders page 1 of the PDF (pdftest.Page1, which skips
// without poppler-utils) and fails unless it is A4 portrait with some,
// but not mostly, ink on it.
func checkPage1(t *testing.T, doc []byte) {
	t.Helper()
	img := pdftest.Page1(t, doc)
	b := img.Bounds()
	// A4 at pdftest.DPI = 60 is about 496x702 pixels.
	if b.Dx() < 400 || b.Dy() < 600 || b.Dy() < b.Dx() {
		t.Fatalf("page 1 is %dx%d, not A4 portrait", b.Dx(), b.Dy())
	}
	if ink := pdftest.InkRatio(img); !pdftest.HasInk(img) || ink > 0.5 {
		t.Fatalf("page 1 has %.2f%% non-white pixels: blank or garbage", 100*ink)
	}
}
