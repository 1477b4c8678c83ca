package wahaclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

var sentinels = []error{ErrUnauthorized, ErrForbidden, ErrSessionNotFound, ErrRouteMissing, ErrRejected, ErrTransient, ErrSessionBusy}

func isSentinel(k error) bool {
	for _, s := range sentinels {
		if k == s {
			return true
		}
	}
	return false
}

// checkAPIError asserts what every caller relies on: a known Kind reachable
// with errors.Is, a bounded message, a bounded Retry-After.
func checkAPIError(t *testing.T, e *APIError) {
	t.Helper()
	if !isSentinel(e.Kind) {
		t.Fatalf("Kind %v is not one of the sentinels", e.Kind)
	}
	if !errors.Is(e, e.Kind) {
		t.Fatalf("errors.Is(err, %v) is false", e.Kind)
	}
	if len(e.Message) > maxMessageLen+len("…") {
		t.Fatalf("message is %d bytes, above the cap of %d", len(e.Message), maxMessageLen)
	}
	if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
		t.Fatalf("RetryAfter %s is outside [0, %s]", e.RetryAfter, maxRetryAfter)
	}
	_ = e.Error()
}

// wantKind is the classification contract for a non-2xx status.
func wantKind(status int) error {
	switch {
	case status == 401:
		return ErrUnauthorized
	case status == 403:
		return ErrForbidden
	case status == 404:
		return nil // depends on the body; checked by the caller
	case status == 501:
		return ErrRejected // the engine does not implement the call
	case status == 408, status == 425, status == 429, status >= 500:
		// a 500 lock timeout is ErrSessionBusy, which is ErrTransient too
		return ErrTransient
	default:
		return ErrRejected
	}
}

// FuzzClassify feeds arbitrary statuses, bodies and Retry-After values to the
// one function that turns WAHA's answers into the worker's decisions.
func FuzzClassify(f *testing.F) {
	f.Add(201, []byte(`{"name":"default","status":"STOPPED","config":null,"me":null,"engine":{}}`), "")
	f.Add(404, []byte(`{"statusCode":404,"message":"Session not found","error":"Not Found"}`), "")
	f.Add(404, []byte(`{"message":"Cannot POST /api/sessions/x/logout","error":"Not Found","statusCode":404}`), "")
	f.Add(422, []byte(`{"statusCode":422,"message":"WAHA Core support only 'default' session.","error":"Unprocessable Entity"}`), "")
	f.Add(400, []byte(`{"statusCode":400,"message":["start must be a boolean value"],"error":"Bad Request"}`), "")
	f.Add(500, []byte(`{"statusCode":500,"timestamp":"x","exception":{"message":"boom","name":"Error"},"request":{}}`), "")
	f.Add(503, []byte(`<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>`), "7")
	f.Add(429, []byte(``), "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(500, []byte(`{"statusCode":500,"exception":{"message":"async-lock timed out in queue default","name":"Error"}}`), "")
	f.Add(501, []byte(`{"statusCode":501,"message":"The method is not implemented by 'NOWEB' engine.","error":"Not Implemented"}`), "")
	f.Add(429, []byte(`{"message":{"nested":[1,2]}}`), "99999999999999999999")
	f.Add(302, []byte(``), "-1")
	f.Add(0, []byte(`{"message":null}`), "")
	f.Add(-7, []byte(`{"message":["a",["b",{"c":1}],null,3]}`), " 5 ")
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter string) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		h.Set("Location", string(body))
		// A transport failure when no status arrived.
		var terr error
		if status == 0 {
			terr = errors.New(string(body))
		}
		e := classify("logout", response{Status: status, Header: h, Body: body, Err: terr, Now: now, Timeout: time.Second})
		if status >= 200 && status < 300 {
			if e != nil {
				t.Fatalf("classify(%d) = %v, want nil for a 2xx", status, e)
			}
			s, err := (&Client{}).decodeSessionBody("logout", status, body)
			if err != nil {
				var ae *APIError
				if !errors.As(err, &ae) {
					t.Fatalf("decodeSessionBody error %T is not an *APIError", err)
				}
				checkAPIError(t, ae)
				if s != nil {
					t.Fatalf("decodeSessionBody returned a session and an error")
				}
			}
			return
		}
		if e == nil {
			t.Fatalf("classify(%d) = nil, want an error", status)
		}
		checkAPIError(t, e)
		if status == 0 {
			if e.Kind != ErrTransient {
				t.Fatalf("transport failure classified as %v", e.Kind)
			}
			return
		}
		if e.StatusCode != status {
			t.Fatalf("StatusCode %d, want %d", e.StatusCode, status)
		}
		if w := wantKind(status); w != nil && !errors.Is(e.Kind, w) {
			t.Fatalf("status %d classified as %v, want %v", status, e.Kind, w)
		}
		if status == 404 && e.Kind != ErrSessionNotFound && e.Kind != ErrRouteMissing && e.Kind != ErrRejected {
			t.Fatalf("404 classified as %v", e.Kind)
		}
		if e.Kind == ErrSessionNotFound && status != 404 {
			t.Fatalf("status %d classified as session not found", status)
		}
		if e.RetryAfter > 0 && status != 429 && status != 503 {
			t.Fatalf("Retry-After honoured on a %d", status)
		}
		if utf8.ValidString(string(body)) && !utf8.ValidString(e.Message) {
			t.Fatalf("valid UTF-8 body gave an invalid UTF-8 message %q", e.Message)
		}
	})
}

// fuzzServer is one WAHA stand-in per fuzz worker process; each input sets
// what it answers next. Inputs run one at a time in a process.
type fuzzServer struct {
	mu     sync.Mutex
	status int
	body   []byte
	header string
	keys   []string // X-Api-Key values seen
}

func (s *fuzzServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	status, body, hdr := s.status, s.body, s.header
	s.keys = append(s.keys, r.Header.Get("X-Api-Key"))
	s.mu.Unlock()
	if r.URL.RawQuery != "" {
		w.WriteHeader(599) // the key must never travel in the URL
		return
	}
	w.Header().Set("Retry-After", hdr)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// FuzzLogoutResponse runs Client.Logout against a server answering arbitrary
// statuses and bodies: no panic, an error of a known kind for every non-2xx,
// success only for a 2xx, and the API key never in an error message unless
// the hostile server itself put it in the body.
func FuzzLogoutResponse(f *testing.F) {
	const key = "fuzz-secret-key-7c1d"
	fs := &fuzzServer{}
	srv := httptest.NewServer(fs)
	f.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL + "/waha/", APIKey: key, Timeout: 5 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(201, []byte(`{"name":"s","status":"SCAN_QR_CODE","me":null,"engine":{"engine":"NOWEB"}}`), "")
	f.Add(201, []byte(``), "")
	f.Add(200, []byte(`<html>login page</html>`), "")
	f.Add(201, []byte(`[1,2,3]`), "")
	f.Add(201, []byte(`{"name":5}`), "")
	f.Add(404, []byte(`{"message":"Cannot POST /api/sessions/s/logout","statusCode":404}`), "")
	f.Add(401, []byte(`{"message":"Unauthorized","statusCode":401}`), "")
	f.Add(503, []byte(`<html>503</html>`), "3")
	f.Add(301, []byte(``), "")
	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter string) {
		if status < 0 {
			status = -status
		}
		status = 200 + status%400 // what net/http lets a handler write
		if strings.IndexFunc(retryAfter, func(r rune) bool { return r < 0x20 || r >= 0x7f }) >= 0 {
			retryAfter = "" // not a header value net/http would send
		}
		fs.mu.Lock()
		fs.status, fs.body, fs.header, fs.keys = status, body, retryAfter, nil
		fs.mu.Unlock()
		c.legacy.Store(false)
		res, err := c.Logout(context.Background(), "fuzz-session")
		fs.mu.Lock()
		for _, k := range fs.keys {
			if k != key {
				t.Fatalf("the server saw X-Api-Key %q", k)
			}
		}
		fs.mu.Unlock()
		ok := status >= 200 && status < 300
		if err == nil {
			if !ok {
				t.Fatalf("status %d accepted as a logout", status)
			}
			if res == nil || res.HTTPStatus != status {
				t.Fatalf("result %+v for status %d", res, status)
			}
			return
		}
		var ae *APIError
		if !errors.As(err, &ae) {
			t.Fatalf("error %T (%v) is not an *APIError", err, err)
		}
		checkAPIError(t, ae)
		if !strings.Contains(string(body), key) && strings.Contains(err.Error(), key) {
			t.Fatalf("the API key leaked into the error: %v", err)
		}
		if ok && ae.Kind != ErrRejected && ae.Kind != ErrTransient {
			t.Fatalf("a 2xx with a bad body classified as %v", ae.Kind)
		}
		if w := wantKind(status); !ok && w != nil && !errors.Is(ae.Kind, w) {
			t.Fatalf("status %d classified as %v, want %v", status, ae.Kind, w)
		}
	})
}
