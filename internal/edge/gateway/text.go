package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Text fields refuse NUL (PostgreSQL cannot store it in text) and invalid
// UTF-8 (encoding/json would silently turn it into U+FFFD): 422 naming the
// field, on every route, for the JSON body (badText), the path and the
// query parameters (checkParams).

// badText finds the first string of the JSON document body (a key or a
// value) that holds a NUL or invalid UTF-8, and returns its field path
// ("title", "items[0].product_id") and why; ok is false when there is
// none. It walks the tokens and checks each string's raw bytes, found by
// json.Decoder.InputOffset.
func badText(body []byte) (field, reason string, ok bool) {
	if utf8.Valid(body) && !bytes.Contains(body, []byte(`\u0000`)) && bytes.IndexByte(body, 0) < 0 {
		return "", "", false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		object bool
		key    string
		index  int
		inKey  bool // the next string of an object is a key
	}
	var stack []frame
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.object {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				b.WriteString("[" + strconv.Itoa(f.index-1) + "]")
			}
		}
		return b.String()
	}
	prev := int64(0)
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", "", false // malformed JSON: the decoder reports it
		}
		off := dec.InputOffset()
		raw := body[prev:off]
		prev = off
		if len(stack) > 0 && !stack[len(stack)-1].object {
			if d, isDelim := tok.(json.Delim); !isDelim || d != ']' {
				stack[len(stack)-1].index++
			}
		}
		isKey := len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].inKey
		if s, isString := tok.(string); isString {
			if isKey {
				stack[len(stack)-1].key = s
			}
			var why string
			switch {
			case !utf8.Valid(raw):
				why = "must be valid UTF-8"
			case strings.IndexByte(s, 0) >= 0:
				why = "must not contain NUL (\\u0000)"
			}
			if why != "" {
				return path(), why, true
			}
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			if d, isDelim := tok.(json.Delim); !isDelim || d != '}' {
				stack[len(stack)-1].inKey = !isKey
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{object: true, inKey: true})
		case json.Delim('['):
			stack = append(stack, frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].inKey = true
			}
		}
		if len(stack) == 0 && dec.More() == false {
			return "", "", false
		}
	}
}

// textReason is why s is not acceptable text, or "".
func textReason(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "must not contain NUL (\\u0000)"
	}
	return ""
}

// checkParams refuses, with 422 naming it, a path parameter of pattern or
// a query parameter that holds a NUL or invalid UTF-8.
func checkParams(pattern string, next http.HandlerFunc) http.Handler {
	var names []string
	for rest := pattern; ; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			break
		}
		names = append(names, strings.TrimSuffix(rest[i+1:i+j], "..."))
		rest = rest[i+j:]
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, n := range names {
			if why := textReason(r.PathValue(n)); why != "" {
				invalidText(w, r, n, why)
				return
			}
		}
		for k, vs := range r.URL.Query() {
			if why := textReason(k); why != "" {
				invalidText(w, r, "query", why)
				return
			}
			for _, v := range vs {
				if why := textReason(v); why != "" {
					invalidText(w, r, k, why)
					return
				}
			}
		}
		next(w, r)
	})
}

func invalidText(w http.ResponseWriter, r *http.Request, field, why string) {
	writeProblem(w, r, http.StatusUnprocessableEntity, "invalid", field+" "+why, FieldProblem{Field: field, Reason: why})
}

// bodyTimedOut: reading the body failed on the server's read deadline
// (http.Server.ReadTimeout), a body too slow.
func bodyTimedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func writeBodyTimeout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	writeProblem(w, r, http.StatusRequestTimeout, "request-timeout", fmt.Sprintf("the body did not arrive in time"))
}
