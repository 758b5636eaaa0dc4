// Package invoicepdf renders an order's invoice as a PDF document (A4, one
// page for a usual order; the lines table continues on further pages, with
// its header repeated, when an order has too many lines for one).
//
// Rendering is a pure function of the Invoice: the document's creation and
// modification dates are taken from IssuedAt (in UTC), the catalogues are
// written in a fixed order and nothing random goes into the file, so the same
// invoice rendered again, by any instance on any machine, is byte-identical.
// A redelivered InvoiceIssued can therefore re-render its PDF instead of
// storing it, and a resent email carries the very same attachment.
//
// The PDF uses the core Helvetica fonts, whose encoding is cp1252 (Western
// European): accented Latin letters, "€", "£" and typographic quotes render;
// characters outside cp1252 are printed as "?".
package invoicepdf

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-pdf/fpdf"
)

// ShopName is printed at the top of every invoice.
const ShopName = "shopstream"

// Invoice is everything an invoice shows.
type Invoice struct {
	Number        string    // invoice number, e.g. "INV-2024-000042"
	OrderID       string    // the order invoiced
	IssuedAt      time.Time // invoice date; also the PDF's creation date
	Customer      Customer  // who is billed
	Lines         []Line    // at least one
	Currency      string    // ISO 4217 code; "" means EUR
	TotalCents    int64     // must equal the sum of the lines
	PaymentMethod string    // "card", "sepa", ...; optional
}

// Customer is the billed customer.
type Customer struct {
	ID    string
	Name  string
	Email string
}

// Line is one invoiced product.
type Line struct {
	ProductID      string
	Title          string // "" prints the product id
	Quantity       int    // > 0
	UnitPriceCents int64  // >= 0
}

// ErrInvalid is wrapped by every validation error Render returns: the
// invoice itself is wrong and rendering it again will not help.
var ErrInvalid = errors.New("invoicepdf: invalid invoice")

// ErrRender is a valid invoice the PDF writer failed on: a bug, which no
// retry fixes.
var ErrRender = errors.New("invoicepdf: render")

// maxTextLen bounds every free-text field, in runes; maxIDLen the
// identifiers printed in full (invoice number, order and customer ids).
const (
	maxTextLen = 500
	maxIDLen   = 64
)

// Validate reports why inv cannot be rendered, or nil. Errors wrap ErrInvalid.
func Validate(inv Invoice) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	for _, f := range []struct{ name, v string }{
		{"number", inv.Number}, {"order id", inv.OrderID}, {"customer id", inv.Customer.ID},
	} {
		if strings.TrimSpace(f.v) == "" {
			return bad("%s is empty", f.name)
		}
	}
	for _, f := range []struct{ name, v string }{
		{"number", inv.Number}, {"order id", inv.OrderID}, {"customer id", inv.Customer.ID},
		{"customer name", inv.Customer.Name}, {"customer email", inv.Customer.Email},
		{"payment method", inv.PaymentMethod}, {"currency", inv.Currency},
	} {
		if err := checkText(f.v); err != nil {
			return bad("%s: %v", f.name, err)
		}
	}
	for _, f := range []struct{ name, v string }{
		{"number", inv.Number}, {"order id", inv.OrderID}, {"customer id", inv.Customer.ID},
	} {
		if utf8.RuneCountInString(f.v) > maxIDLen {
			return bad("%s longer than %d characters", f.name, maxIDLen)
		}
	}
	if inv.IssuedAt.IsZero() {
		return bad("issued-at is zero")
	}
	if y := inv.IssuedAt.UTC().Year(); y < 1970 || y > 9999 {
		return bad("issued-at %v out of range", inv.IssuedAt)
	}
	if c := inv.Currency; c != "" && (len(c) != 3 || strings.ToUpper(c) != c || !isASCIILetters(c)) {
		return bad("currency %q is not an ISO 4217 code", c)
	}
	if len(inv.Lines) == 0 {
		return bad("no lines")
	}
	var sum int64
	for i, l := range inv.Lines {
		if strings.TrimSpace(l.ProductID) == "" && strings.TrimSpace(l.Title) == "" {
			return bad("line %d: no product id nor title", i+1)
		}
		if err := checkText(l.ProductID); err != nil {
			return bad("line %d: product id: %v", i+1, err)
		}
		if err := checkText(l.Title); err != nil {
			return bad("line %d: title: %v", i+1, err)
		}
		if l.Quantity <= 0 {
			return bad("line %d: quantity %d is not positive", i+1, l.Quantity)
		}
		if l.UnitPriceCents < 0 {
			return bad("line %d: negative unit price %d", i+1, l.UnitPriceCents)
		}
		lt, ok := lineTotal(l)
		if !ok || sum > math.MaxInt64-lt {
			return bad("line %d: amount overflows", i+1)
		}
		sum += lt
	}
	if inv.TotalCents < 0 {
		return bad("negative total %d", inv.TotalCents)
	}
	if sum != inv.TotalCents {
		return bad("total %d is not the sum of the lines %d", inv.TotalCents, sum)
	}
	return nil
}

func checkText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	if utf8.RuneCountInString(s) > maxTextLen {
		return fmt.Errorf("longer than %d characters", maxTextLen)
	}
	return nil
}

func isASCIILetters(s string) bool {
	for _, r := range s {
		if r > unicode.MaxASCII || !unicode.IsLetter(r) {
			return false
		}
	}
	return true
}

func lineTotal(l Line) (int64, bool) {
	q := int64(l.Quantity)
	if l.UnitPriceCents != 0 && q > math.MaxInt64/l.UnitPriceCents {
		return 0, false
	}
	return q * l.UnitPriceCents, true
}

// FormatCents formats an amount the French way: "89,99 €", "1 234,50 €";
// currencies other than EUR are suffixed with their code ("12,00 USD").
func FormatCents(cents int64, currency string) string {
	neg := cents < 0
	u := uint64(cents)
	if neg {
		u = uint64(-(cents + 1)) + 1 // no overflow for MinInt64
	}
	units := strconv.FormatUint(u/100, 10)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range units {
		if i > 0 && (len(units)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	fmt.Fprintf(&b, ",%02d ", u%100)
	switch currency {
	case "", "EUR":
		b.WriteString("€")
	default:
		b.WriteString(currency)
	}
	return b.String()
}

// Layout, in millimetres on A4 portrait.
const (
	marginX    = 20.0
	marginTop  = 18.0
	contentW   = 210 - 2*marginX
	pageBottom = 297 - 22.0 // last usable y; the footer sits below
	rowH       = 7.0
)

// column widths of the lines table: description, qty, unit price, amount.
var cols = [4]float64{contentW - 15 - 32 - 32, 15, 32, 32}

// Render validates inv and returns its invoice as a PDF document. Errors
// from validation wrap ErrInvalid.
func Render(inv Invoice) ([]byte, error) {
	if err := Validate(inv); err != nil {
		return nil, err
	}
	issued := inv.IssuedAt.UTC()
	currency := inv.Currency
	if currency == "" {
		currency = "EUR"
	}

	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCatalogSort(true)
	pdf.SetCreationDate(issued)
	pdf.SetModificationDate(issued)
	pdf.SetCompression(true)
	pdf.SetMargins(marginX, marginTop, marginX)
	pdf.SetAutoPageBreak(false, 0) // page breaks are placed by hand, between rows
	pdf.AliasNbPages("{nb}")

	cp := pdf.UnicodeTranslatorFromDescriptor("") // cp1252
	tr := func(s string) string {
		return cp(printable(s))
	}
	pdf.SetTitle("Invoice "+inv.Number, true)
	pdf.SetSubject("Order "+inv.OrderID, true)
	pdf.SetAuthor(ShopName, true)
	pdf.SetCreator(ShopName, true)
	pdf.SetProducer(ShopName+" invoicepdf", true)
	pdf.SetLang("en")

	pdf.SetFooterFunc(func() {
		pdf.SetY(-15)
		pdf.SetFont("Helvetica", "", 8)
		pdf.SetTextColor(110, 110, 110)
		pdf.CellFormat(contentW/2, 5, tr(ShopName+" - invoice "+inv.Number), "", 0, "L", false, 0, "")
		pdf.CellFormat(contentW/2, 5, fmt.Sprintf("Page %d/{nb}", pdf.PageNo()), "", 0, "R", false, 0, "")
	})

	pdf.AddPage()

	// Shop name and document title.
	pdf.SetTextColor(20, 40, 90)
	pdf.SetFont("Helvetica", "B", 24)
	pdf.CellFormat(contentW/2, 12, tr(ShopName), "", 0, "L", false, 0, "")
	pdf.SetFont("Helvetica", "B", 18)
	pdf.CellFormat(contentW/2, 12, "INVOICE", "", 1, "R", false, 0, "")
	pdf.SetDrawColor(20, 40, 90)
	pdf.SetLineWidth(0.6)
	pdf.Line(marginX, pdf.GetY()+1, marginX+contentW, pdf.GetY()+1)
	pdf.Ln(8)

	// Invoice facts on the left, the billed customer on the right.
	top := pdf.GetY()
	pdf.SetTextColor(0, 0, 0)
	facts := [][2]string{
		{"Invoice number", inv.Number},
		{"Invoice date", issued.Format("2006-01-02")},
		{"Order", inv.OrderID},
	}
	if inv.PaymentMethod != "" {
		facts = append(facts, [2]string{"Payment", inv.PaymentMethod})
	}
	const labelW, valueW = 28.0, 70.0
	for _, f := range facts {
		pdf.SetX(marginX)
		pdf.SetFont("Helvetica", "B", 10)
		pdf.CellFormat(labelW, 6, tr(f[0]), "", 0, "L", false, 0, "")
		pdf.CellFormat(valueW, 6, shrink(pdf, "", 10, tr(f[1]), valueW-1), "", 1, "L", false, 0, "")
	}
	leftBottom := pdf.GetY()

	right := marginX + labelW + valueW + 2
	rightW := marginX + contentW - right
	pdf.SetXY(right, top)
	pdf.SetFont("Helvetica", "B", 10)
	pdf.CellFormat(rightW, 6, "Billed to", "", 2, "L", false, 0, "")
	for _, s := range []string{inv.Customer.Name, inv.Customer.Email} {
		if strings.TrimSpace(s) == "" {
			continue
		}
		pdf.CellFormat(rightW, 6, shrink(pdf, "", 10, tr(s), rightW-1), "", 2, "L", false, 0, "")
	}
	pdf.SetFont("Helvetica", "", 8)
	pdf.CellFormat(rightW, 5, "Customer id", "", 2, "L", false, 0, "")
	pdf.CellFormat(rightW, 5, shrink(pdf, "", 8, tr(inv.Customer.ID), rightW-1), "", 2, "L", false, 0, "")
	pdf.SetY(max(leftBottom, pdf.GetY()) + 10)

	// Lines table.
	header := func() {
		pdf.SetFont("Helvetica", "B", 10)
		pdf.SetFillColor(20, 40, 90)
		pdf.SetTextColor(255, 255, 255)
		for i, h := range []string{"Description", "Qty", "Unit price", "Amount"} {
			align := "R"
			if i == 0 {
				align = "L"
			}
			pdf.CellFormat(cols[i], rowH+1, h, "", 0, align, true, 0, "")
		}
		pdf.Ln(-1)
		pdf.SetTextColor(0, 0, 0)
		pdf.SetFont("Helvetica", "", 10)
	}
	header()
	pdf.SetDrawColor(200, 200, 200)
	pdf.SetLineWidth(0.2)
	for i, l := range inv.Lines {
		if pdf.GetY()+rowH > pageBottom {
			pdf.AddPage()
			header()
			pdf.SetDrawColor(200, 200, 200)
			pdf.SetLineWidth(0.2)
		}
		fill := i%2 == 1
		pdf.SetFillColor(242, 244, 248)
		title := l.Title
		if strings.TrimSpace(title) == "" {
			title = l.ProductID
		}
		lt, _ := lineTotal(l)
		pdf.CellFormat(cols[0], rowH, fit(pdf, tr(title), cols[0]-2), "B", 0, "L", fill, 0, "")
		pdf.CellFormat(cols[1], rowH, strconv.Itoa(l.Quantity), "B", 0, "R", fill, 0, "")
		pdf.CellFormat(cols[2], rowH, tr(FormatCents(l.UnitPriceCents, currency)), "B", 0, "R", fill, 0, "")
		pdf.CellFormat(cols[3], rowH, tr(FormatCents(lt, currency)), "B", 1, "R", fill, 0, "")
	}

	// Total row.
	if pdf.GetY()+rowH+2 > pageBottom {
		pdf.AddPage()
	}
	pdf.Ln(2)
	pdf.SetFont("Helvetica", "B", 11)
	pdf.SetDrawColor(20, 40, 90)
	pdf.SetLineWidth(0.4)
	pdf.CellFormat(cols[0]+cols[1]+cols[2], rowH+1, "Total ("+currency+")", "T", 0, "R", false, 0, "")
	pdf.CellFormat(cols[3], rowH+1, tr(FormatCents(inv.TotalCents, currency)), "T", 1, "R", false, 0, "")

	if pdf.GetY()+12 <= pageBottom {
		pdf.Ln(6)
		pdf.SetFont("Helvetica", "", 9)
		pdf.SetTextColor(90, 90, 90)
		pdf.CellFormat(contentW, 5, tr("Thank you for your order."), "", 1, "L", false, 0, "")
	}

	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrRender, inv.Number, err)
	}
	return buf.Bytes(), nil
}

// printable replaces control characters (a newline in a title would break the
// table) with spaces and characters cp1252 lacks with "?".
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case unicode.IsControl(r) || unicode.IsSpace(r):
			return ' '
		case r < 0x80 || inCP1252(r):
			return r
		default:
			return '?'
		}
	}, s)
}

// cp1252High is every non-ASCII character cp1252 encodes.
var cp1252High = func() map[rune]bool {
	m := map[rune]bool{}
	for r := rune(0xA0); r <= 0xFF; r++ {
		m[r] = true
	}
	for _, r := range "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ" {
		m[r] = true
	}
	return m
}()

func inCP1252(r rune) bool { return cp1252High[r] }

// shrink selects Helvetica in style at the largest size from size down to
// 6 points in which s fits in w millimetres and returns s, shortened with fit
// if it does not fit even at 6 points.
func shrink(pdf *fpdf.Fpdf, style string, size float64, s string, w float64) string {
	for ; size > 6; size -= 0.5 {
		pdf.SetFont("Helvetica", style, size)
		if pdf.GetStringWidth(s) <= w {
			return s
		}
	}
	pdf.SetFont("Helvetica", style, 6)
	return fit(pdf, s, w)
}

// fit shortens an already translated (cp1252) string with "..." until it
// fits in w millimetres in the current font.
func fit(pdf *fpdf.Fpdf, s string, w float64) string {
	if pdf.GetStringWidth(s) <= w {
		return s
	}
	b := []byte(s) // one byte per character in cp1252
	for len(b) > 0 && pdf.GetStringWidth(string(b)+"...") > w {
		b = b[:len(b)-1]
	}
	return strings.TrimRight(string(b), " ") + "..."
}
