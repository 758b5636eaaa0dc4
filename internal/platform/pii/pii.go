// Package pii seals the personal fields of events (an email address, a
// name) for the event log, so that erasing a person is destroying a key:
// crypto-shredding. Each person has a key of their own (AES-256-GCM, kept
// by the customers context in PostgreSQL, never in Kafka); an event names
// the key its fields are sealed under, and a sealed field reads
// "pii:v1:" + base64(nonce | ciphertext and tag).
//
// Guarantees: a sealed field reveals nothing but its length without the
// key; the key id is authenticated with it (a field moved to another
// key's event does not open); Open of a field that was altered fails.
// Once the key is gone, nothing in the log opens again, while every event
// still decodes and replays.
package pii

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Prefix starts every sealed field.
const Prefix = "pii:v1:"

// KeySize is a key's length in bytes (AES-256).
const KeySize = 32

// ErrErased is a field whose key was destroyed: the person was erased.
var ErrErased = errors.New("pii: the key is destroyed (the person was erased)")

// NewKey returns a fresh random key.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("pii: key: %w", err)
	}
	return k, nil
}

// Sealed reports whether s is a sealed field.
func Sealed(s string) bool { return strings.HasPrefix(s, Prefix) }

// Seal encrypts plain under key, named keyID.
func Seal(key []byte, keyID, plain string) (string, error) {
	aead, err := gcm(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("pii: nonce: %w", err)
	}
	return Prefix + base64.RawStdEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(plain), []byte(keyID))), nil
}

// Open decrypts a field Seal made under key, named keyID.
func Open(key []byte, keyID, sealed string) (string, error) {
	if !Sealed(sealed) {
		return "", errors.New("pii: not a sealed field")
	}
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(sealed, Prefix))
	if err != nil {
		return "", fmt.Errorf("pii: sealed field: %w", err)
	}
	aead, err := gcm(key)
	if err != nil {
		return "", err
	}
	if len(raw) < aead.NonceSize() {
		return "", errors.New("pii: sealed field too short")
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(keyID))
	if err != nil {
		return "", fmt.Errorf("pii: open: %w", err)
	}
	return string(plain), nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("pii: a key is %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
