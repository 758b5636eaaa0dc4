// Package pdftest looks at a PDF the way a reader would, for tests: it
// renders page 1 with poppler's pdftoppm and extracts the text with
// pdftotext (apt-get install poppler-utils, which CI installs).
package pdftest

import (
	"errors"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// DPI is the resolution Page1 renders at: an A4 page comes out about
// 496x702 pixels.
const DPI = 60

// MinInk is the share of non-white pixels under which HasInk calls a
// page blank.
const MinInk = 0.01

// Available reports whether pdftoppm is on PATH, that is whether Page1
// renders rather than skipping; a test that must not skip checks it first.
func Available() bool {
	_, err := exec.LookPath("pdftoppm")
	return err == nil
}

// Page1 renders page 1 of pdf at DPI with pdftoppm and returns the decoded
// PNG. It skips the test when pdftoppm is not on PATH, and fails it (Fatal)
// when pdftoppm exits with an error or does not write a decodable PNG, so
// the image it returns is always poppler's rendering of a page.
func Page1(t testing.TB, pdf []byte) image.Image {
	t.Helper()
	bin, err := exec.LookPath("pdftoppm")
	if err != nil {
		t.Skip("pdftoppm not on PATH (apt-get install poppler-utils)")
	}
	file := writePDF(t, pdf)
	prefix := filepath.Join(filepath.Dir(file), "page")
	out, err := exec.Command(bin, "-png", "-r", strconv.Itoa(DPI), "-f", "1", "-l", "1", "-singlefile", file, prefix).CombinedOutput()
	if err != nil {
		t.Fatalf("pdftoppm: %v\n%s", err, out)
	}
	f, err := os.Open(prefix + ".png")
	if err != nil {
		t.Fatalf("pdftoppm wrote no page: %v\n%s", err, out)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("pdftoppm output: %v", err)
	}
	return img
}

// Text returns the text of every page of pdf as pdftotext -layout -enc
// UTF-8 extracts it. It skips the test when pdftotext is not on PATH and
// fails it (Fatal) when pdftotext exits with an error.
func Text(t testing.TB, pdf []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Skip("pdftotext not on PATH (apt-get install poppler-utils)")
	}
	file := writePDF(t, pdf)
	out, err := exec.Command(bin, "-layout", "-enc", "UTF-8", file, "-").Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("pdftotext: %v\n%s", err, stderr)
	}
	return string(out)
}

// InkRatio returns the share (0 to 1) of img's pixels that are not near
// white (any of R, G, B below 0xe000 of 0xffff).
func InkRatio(img image.Image) float64 {
	b := img.Bounds()
	if b.Empty() {
		return 0
	}
	var ink int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if r, g, bl, _ := img.At(x, y).RGBA(); r < 0xe000 || g < 0xe000 || bl < 0xe000 {
				ink++
			}
		}
	}
	return float64(ink) / float64(b.Dx()*b.Dy())
}

// HasInk reports whether img is not blank: at least MinInk of its pixels
// are not near white (see InkRatio).
func HasInk(img image.Image) bool {
	return InkRatio(img) >= MinInk
}

// writePDF writes pdf to a fresh file in a test temporary directory,
// removed when the test ends.
func writePDF(t testing.TB, pdf []byte) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(file, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}
