package gateway

import (
	"context"

	"shopstream/internal/edge/auth"
)

// testStaffKey is the staff API key testAuth admits.
const testStaffKey = "staff-key-of-the-gateway-tests"

// testAuth authenticates the gateway tests' callers.
var testAuth = func() *auth.Authenticator {
	a, err := auth.New(context.Background(), auth.Config{Secret: []byte("a token secret of the gateway tests"), StaffKeys: []string{testStaffKey}})
	if err != nil {
		panic(err)
	}
	return a
}()
