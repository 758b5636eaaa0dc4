package pii

import (
	"strings"
	"testing"
)

func TestSealOpensOnlyWithItsKeyAndID(t *testing.T) {
	k1, _ := NewKey()
	k2, _ := NewKey()
	s, err := Seal(k1, "k-1", "zizou@example.org")
	if err != nil || !Sealed(s) || strings.Contains(s, "zizou") {
		t.Fatalf("sealed %q, %v", s, err)
	}
	if s2, _ := Seal(k1, "k-1", "zizou@example.org"); s2 == s {
		t.Fatal("two seals of one value are equal: the nonce is not random")
	}
	if got, err := Open(k1, "k-1", s); err != nil || got != "zizou@example.org" {
		t.Fatalf("open: %q %v", got, err)
	}
	flipped := []byte(s)
	flipped[len(flipped)-2] ^= 1
	for name, open := range map[string]func() (string, error){
		"another key":    func() (string, error) { return Open(k2, "k-1", s) },
		"another key id": func() (string, error) { return Open(k1, "k-2", s) },
		"altered":        func() (string, error) { return Open(k1, "k-1", string(flipped)) },
		"not sealed":     func() (string, error) { return Open(k1, "k-1", "zizou@example.org") },
		"short key":      func() (string, error) { return Open(k1[:16], "k-1", s) },
	} {
		if got, err := open(); err == nil {
			t.Errorf("%s: opened as %q", name, got)
		}
	}
}
