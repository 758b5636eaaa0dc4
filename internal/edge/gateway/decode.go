package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// maxBody is the largest request body accepted.
const maxBody = 1 << 20

// decodeJSON reads a JSON object into dst, strictly: JSON content type,
// one object, no unknown field, at most maxBody bytes, no text with a NUL
// or invalid UTF-8 (badText). On failure it has written the problem (400,
// 408 for a body slower than the server's read timeout, 413, 415, or 422
// naming the text field) and returns false.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) bool {
	// A body must say it is JSON: a cross-site page can send a "simple"
	// request (text/plain, or no type) without a CORS preflight, never
	// one of application/json.
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		writeProblem(w, r, http.StatusUnsupportedMediaType, "unsupported-media-type", "send the body as Content-Type: application/json")
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil && bodyTimedOut(err) {
		writeBodyTimeout(w, r)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err == nil {
		err = dec.Decode(dst)
	}
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err == nil {
		if f, why, bad := badText(body); bad {
			invalidText(w, r, f, why)
			return false
		}
		return true
	}
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &tooBig):
		writeProblem(w, r, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the body must be at most %d bytes", maxBody))
	case errors.As(err, &typeErr):
		writeProblem(w, r, http.StatusBadRequest, "malformed", fmt.Sprintf("field %s must be a %s", typeErr.Field, typeErr.Type),
			FieldProblem{Field: typeErr.Field, Reason: "must be a " + typeErr.Type.String()})
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		writeProblem(w, r, http.StatusBadRequest, "malformed", "the body is not valid JSON")
	case errors.Is(err, io.EOF):
		writeProblem(w, r, http.StatusBadRequest, "malformed", "the body is empty; send a JSON object")
	default:
		writeProblem(w, r, http.StatusBadRequest, "malformed", err.Error())
	}
	return false
}

// field is a required field and whether the request has it.
type field struct {
	name    string
	present bool
}

// required reports the first missing required field as a 422 and returns
// false, or returns true when all are present.
func required(w http.ResponseWriter, r *http.Request, fields ...field) bool {
	for _, f := range fields {
		if !f.present {
			writeProblem(w, r, http.StatusUnprocessableEntity, "invalid", f.name+" is required", FieldProblem{Field: f.name, Reason: "is required"})
			return false
		}
	}
	return true
}
