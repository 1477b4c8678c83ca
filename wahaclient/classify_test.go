package wahaclient

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClassifyStatuses(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		kind       error
		message    string
		retryAfter time.Duration
	}{
		{"201 is success", 201, nil, `{"name":"x"}`, nil, "", 0},
		{"204 is success", 204, nil, ``, nil, "", 0},
		{"401 auth body", 401, nil, `{"message":"Unauthorized","statusCode":401}`, ErrUnauthorized, "Unauthorized", 0},
		{"403 scoped key", 403, nil, `{"message":"Forbidden","statusCode":403}`, ErrForbidden, `the key is valid but scoped: it lacks the "control" action for this session, or it is bound to other sessions (WAHA 2026.4.3+ keys); give wahaq a key with "control" on every session it logs out`, 0},
		{"403 with a message of its own", 403, nil, `{"message":"key disabled","statusCode":403}`, ErrForbidden, `key disabled; the key is valid but scoped: it lacks the "control" action for this session, or it is bound to other sessions (WAHA 2026.4.3+ keys); give wahaq a key with "control" on every session it logs out`, 0},
		{"501 engine", 501, nil, `{"statusCode":501,"message":"The method is not implemented by 'NOWEB' engine.","error":"Not Implemented"}`, ErrRejected, "The method is not implemented by 'NOWEB' engine.", 0},
		{"500 lock timeout", 500, nil, `{"statusCode":500,"exception":{"message":"async-lock timed out in queue s1","name":"Error"}}`, ErrSessionBusy, "async-lock timed out in queue s1", 0},
		{"404 session not found", 404, nil, `{"statusCode":404,"message":"Session not found","error":"Not Found"}`, ErrSessionNotFound, "Session not found", 0},
		{"404 older wording", 404, nil, `{"statusCode":404,"message":"We didn't find a session with name 'x'.\nPlease start it first by using POST /api/sessions/x/start request","error":"Not Found"}`, ErrSessionNotFound, "We didn't find a session with name 'x'.\nPlease start it first by using POST /api/sessions/x/start request", 0},
		{"404 route missing", 404, nil, `{"message":"Cannot POST /api/sessions/x/logout","error":"Not Found","statusCode":404}`, ErrRouteMissing, "Cannot POST /api/sessions/x/logout", 0},
		{"404 from a proxy", 404, nil, `<html>not found</html>`, ErrRejected, "Not Found", 0},
		{"400 array message", 400, nil, `{"statusCode":400,"message":["start must be a boolean value","name must be a string"],"error":"Bad Request"}`, ErrRejected, "start must be a boolean value; name must be a string", 0},
		{"409 conflict", 409, nil, `{"error":"Conflict","statusCode":409,"message":"busy"}`, ErrRejected, "busy", 0},
		{"422 core", 422, nil, `{"statusCode":422,"message":"WAHA Core support only 'default' session.","error":"Unprocessable Entity"}`, ErrRejected, "WAHA Core support only 'default' session.", 0},
		{"408", 408, nil, ``, ErrTransient, "Request Timeout", 0},
		{"425", 425, nil, ``, ErrTransient, "Too Early", 0},
		{"429 retry-after seconds", 429, hdr("Retry-After", "7"), `<html>429</html>`, ErrTransient, "Too Many Requests", 7 * time.Second},
		{"429 retry-after date", 429, hdr("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)), ``, ErrTransient, "Too Many Requests", 90 * time.Second},
		{"429 retry-after in the past", 429, hdr("Retry-After", now.Add(-time.Minute).Format(http.TimeFormat)), ``, ErrTransient, "Too Many Requests", 0},
		{"429 retry-after garbage", 429, hdr("Retry-After", "soon"), ``, ErrTransient, "Too Many Requests", 0},
		{"429 retry-after capped", 429, hdr("Retry-After", "999999"), ``, ErrTransient, "Too Many Requests", time.Hour},
		{"503 retry-after", 503, hdr("Retry-After", "2"), ``, ErrTransient, "Service Unavailable", 2 * time.Second},
		{"502 ignores retry-after", 502, hdr("Retry-After", "2"), ``, ErrTransient, "Bad Gateway", 0},
		{"500 exception shape", 500, nil, `{"statusCode":500,"timestamp":"t","exception":{"message":"boom","name":"Error","stack":"..."},"request":{"path":"/p","method":"POST","body":{},"query":{}},"version":{}}`, ErrTransient, "boom", 0},
		{"500 exception without message", 500, nil, `{"statusCode":500,"exception":{"name":"TypeError"}}`, ErrTransient, "TypeError", 0},
		{"504 empty", 504, nil, ``, ErrTransient, "Gateway Timeout", 0},
		{"302 redirect", 302, hdr("Location", "https://elsewhere/"), ``, ErrRejected, "unexpected redirect to https://elsewhere/", 0},
		{"message null falls back", 400, nil, `{"message":null}`, ErrRejected, "Bad Request", 0},
		{"message number kept", 400, nil, `{"message":42}`, ErrRejected, "42", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := tc.header
			if h == nil {
				h = http.Header{}
			}
			got := classify("logout", response{Status: tc.status, Header: h, Body: []byte(tc.body), Now: now})
			if tc.kind == nil {
				require.Nil(t, got)
				return
			}
			require.NotNil(t, got)
			require.ErrorIs(t, got, tc.kind)
			require.Equal(t, tc.status, got.StatusCode)
			require.Equal(t, tc.message, got.Message)
			require.Equal(t, tc.retryAfter, got.RetryAfter)
			d, ok := RetryAfter(got)
			require.Equal(t, tc.retryAfter > 0, ok)
			require.Equal(t, tc.retryAfter, d)
			for _, other := range []error{ErrUnauthorized, ErrForbidden, ErrSessionNotFound, ErrRouteMissing, ErrRejected, ErrTransient} {
				// ErrSessionBusy is the one kind that is another too: transient
				if other != tc.kind && !errors.Is(tc.kind, other) {
					require.NotErrorIs(t, got, other, "exactly one kind")
				}
			}
		})
	}
}

func TestClassifyTransport(t *testing.T) {
	t.Parallel()
	refused := &url.Error{Op: "Post", URL: "http://127.0.0.1:1/api/sessions/x/logout", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		name      string
		err       error
		callerErr error
		is        []error
		msg       string
	}{
		{"connection refused", refused, nil, []error{syscall.ECONNREFUSED}, "dial tcp: connection refused"},
		{"reset", &url.Error{Op: "Post", URL: "u", Err: syscall.ECONNRESET}, nil, []error{syscall.ECONNRESET}, "connection reset by peer"},
		{"EOF", &url.Error{Op: "Post", URL: "u", Err: io.EOF}, nil, []error{io.EOF}, "EOF"},
		{"per-call timeout", &url.Error{Op: "Post", URL: "u", Err: context.DeadlineExceeded}, nil, []error{context.DeadlineExceeded}, "no answer within the per-call timeout of 1m0s"},
		{"caller canceled", &url.Error{Op: "Post", URL: "u", Err: context.Canceled}, context.Canceled, []error{context.Canceled}, "request abandoned: context canceled"},
		{"caller canceled, transport says something else", io.ErrUnexpectedEOF, context.Canceled, []error{context.Canceled, io.ErrUnexpectedEOF}, "request abandoned: context canceled"},
		{"caller deadline", &url.Error{Op: "Get", URL: "u", Err: context.DeadlineExceeded}, context.DeadlineExceeded, []error{context.DeadlineExceeded}, "request abandoned: context deadline exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := classify("logout", response{Err: tc.err, CallerErr: tc.callerErr, Timeout: time.Minute})
			require.ErrorIs(t, got, ErrTransient)
			for _, target := range tc.is {
				require.ErrorIs(t, got, target)
			}
			require.Equal(t, 0, got.StatusCode)
			require.Equal(t, tc.msg, got.Message)
			require.Equal(t, "waha logout: "+tc.msg, got.Error())
			require.NotContains(t, got.Error(), "http://", "no URL in the message")
		})
	}
}

func TestAPIErrorString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *APIError
		want string
	}{
		{&APIError{Op: "logout", StatusCode: 422, Message: "WAHA Core support only 'default' session...", Kind: ErrRejected},
			"waha logout: 422 Unprocessable Entity: WAHA Core support only 'default' session..."},
		{&APIError{Op: "logout", StatusCode: 502, Message: "Bad Gateway", Kind: ErrTransient}, "waha logout: 502 Bad Gateway"},
		{&APIError{Op: "list sessions", StatusCode: 429, Message: "Too Many Requests", RetryAfter: 3 * time.Second, Kind: ErrTransient},
			"waha list sessions: 429 Too Many Requests (retry after 3s)"},
		{&APIError{Op: "validate", StatusCode: 0, Kind: ErrTransient}, "waha validate: waha: transient failure"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, tc.err.Error())
	}
	e := &APIError{Op: "x", Kind: ErrTransient, Err: context.Canceled}
	require.Len(t, e.Unwrap(), 2)
	var target *APIError
	require.True(t, errors.As(error(e), &target))
	_, ok := RetryAfter(errors.New("plain"))
	require.False(t, ok)
}

func TestErrorMessageCapped(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 5000)
	got := classify("logout", response{Status: 400, Body: []byte(`{"message":"` + long + `"}`)}).Message
	require.LessOrEqual(t, len(got), maxMessageLen+len("…"))
	require.True(t, strings.HasSuffix(got, "…"))
	require.True(t, strings.HasPrefix(got, "éé"))
	require.NotContains(t, got, "\uFFFD", "cut on a rune boundary")
}

func TestValidateSessionName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ok      bool
		mention string
	}{
		{"default", true, ""},
		{"sales-bot_01", true, ""},
		{strings.Repeat("a", 54), true, ""},
		{strings.Repeat("a", 55), false, "at most 54"},
		{"", false, "empty"},
		{"a b", false, "only letters"},
		{"a/b", false, "only letters"},
		{"../etc", false, "only letters"},
		{"ünïcode", false, "only letters"},
		{"a?x-api-key=1", false, "only letters"},
		{"a\n", false, "only letters"},
	}
	for _, tc := range tests {
		err := ValidateSessionName(tc.name)
		if tc.ok {
			require.NoError(t, err, tc.name)
			continue
		}
		require.ErrorIs(t, err, ErrInvalidSessionName, tc.name)
		require.Contains(t, err.Error(), tc.mention)
	}
	err := ValidateSessionName(strings.Repeat("x", 10000) + " ")
	require.Less(t, len(err.Error()), 300, "a hostile name does not blow up the message")
}
