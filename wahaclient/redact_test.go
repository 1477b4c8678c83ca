package wahaclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/wahaclient"
)

// Secrets of these tests: the WAHA key, the validation key, and a password
// in a base URL.
const (
	wahaKey   = "waha-key-9f3e1c77d2"
	checkKey  = "check-key-41b8a2e6c0"
	urlSecret = "url-pass-7d1c93ab"
)

// echoServer answers every call with status and body, in which "{KEY}",
// "{CHECK}" and "{PASS}" are replaced by the secrets (so the server echoes
// them, as real servers do in "bad key ..." messages).
func echoServer(t *testing.T, status int, header http.Header, body string) *httptest.Server {
	t.Helper()
	rep := strings.NewReplacer("{KEY}", wahaKey, "{CHECK}", checkKey, "{PASS}", urlSecret)
	body = rep.Replace(body)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for k, vs := range header {
			for _, v := range vs {
				w.Header().Add(k, rep.Replace(v))
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	return ts
}

// requireNoSecret checks every text the caller could store, log or show.
func requireNoSecret(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range texts {
		for _, secret := range []string{wahaKey, checkKey, urlSecret, url.QueryEscape(wahaKey)} {
			require.NotContains(t, s, secret)
		}
		require.NotContains(t, s, wahaKey[:10], "part of the key")
	}
}

func errTexts(err error) []string {
	if err == nil {
		return nil
	}
	out := []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)}
	var ae *wahaclient.APIError
	if errors.As(err, &ae) {
		out = append(out, ae.Message, ae.Body)
	}
	return out
}

func TestRedactsWhatWAHAEchoes(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 2040) // puts the key across the message cap
	for _, tc := range []struct {
		name   string
		status int
		header http.Header
		body   string
	}{
		{"500 bad key", 500, nil, `{"message":"bad key {KEY}"}`},
		{"401 echo", 401, nil, `{"message":"Unauthorized: {KEY} is not valid","statusCode":401}`},
		{"422 message array", 422, nil, `{"message":["key","{KEY}"]}`},
		{"500 exception", 500, nil, `{"exception":{"message":"key={KEY}","name":"Error"}}`},
		{"400 across the cap", 400, nil, `{"message":"` + long + `{KEY}"}`},
		{"echo of the other secret", 500, nil, `{"message":"validation key {CHECK}"}`},
		{"JSON-escaped echo", 500, nil, `{"message":"k=\"{KEY}\""}`},
		{"redirect with user info", 302, http.Header{"Location": {"http://u:{PASS}@evil.example/?k={KEY}"}}, ``},
		{"2xx that is not a session", 201, nil, `["{KEY}"]`},
		{"2xx object without status", 201, nil, `{"name":"{KEY}"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := echoServer(t, tc.status, tc.header, tc.body)
			c := newClient(t, ts.URL, wahaKey, func(c *wahaclient.Config) { c.Redact = []string{checkKey, urlSecret} })
			res, err := c.Logout(context.Background(), "a")
			require.Error(t, err)
			require.Nil(t, res)
			requireNoSecret(t, errTexts(err)...)
			if tc.status == http.StatusFound {
				// User info and query are cut from the URL before redaction.
				require.Contains(t, err.Error(), "unexpected redirect to http://evil.example/?…")
				return
			}
			require.Contains(t, err.Error(), "[redact", "the redaction shows (the cap may cut it)")
		})
	}
}

// Structured data is WAHA's and is returned as sent, even when it holds a
// secret's characters: rewriting names and statuses broke teardowns
// (issue 22). Only free text (messages, bodies kept as text) is redacted.
func TestStructuredFieldsAreNeverRewritten(t *testing.T) {
	t.Parallel()
	sess := `{"name":"a","status":"{KEY}","me":{"id":"{KEY}@c.us","pushName":"{CHECK}"},"config":{"k":"{KEY}"},"engine":{"engine":"NOWEB"}}`
	ts := echoServer(t, 201, nil, sess)
	c := newClient(t, ts.URL, wahaKey, func(c *wahaclient.Config) { c.Redact = []string{checkKey} })
	res, err := c.Logout(context.Background(), "a")
	require.NoError(t, err)
	require.Equal(t, wahaKey, res.Session.Status)
	require.Equal(t, wahaKey+"@c.us", res.Session.Me.ID)
	require.Equal(t, checkKey, res.Session.Me.PushName)
	require.JSONEq(t, `{"k":"`+wahaKey+`"}`, string(res.Session.Config))

	// The cases: a short key inside a session's name, and a key
	// inside a status.
	for _, key := range []string{"321", "ORKIN", "orkin"} {
		ls := echoServer(t, 200, nil, `[{"name":"bot-321","status":"WORKING"},{"name":"bot-7","status":"WORKING"},{"name":"321","status":"STOPPED"}]`)
		c := newClient(t, ls.URL, key)
		list, err := c.ListSessions(context.Background(), true)
		require.NoError(t, err)
		require.Equal(t, []string{"bot-321", "bot-7", "321"}, []string{list[0].Name, list[1].Name, list[2].Name}, key)
		require.Equal(t, "WORKING", list[0].Status, key)
		var names, statuses []string
		require.NoError(t, c.EachSession(context.Background(), true, func(e wahaclient.ListEntry) error {
			require.Empty(t, e.Skip, key)
			names = append(names, e.Session.Name)
			statuses = append(statuses, e.Session.Status)
			return nil
		}))
		require.Equal(t, []string{"bot-321", "bot-7", "321"}, names, key)
		require.Equal(t, []string{"WORKING", "WORKING", "STOPPED"}, statuses, key)
		got, err := newClient(t, echoServer(t, 201, nil, `{"name":"bot-321","status":"WORKING"}`).URL, key).Logout(context.Background(), "bot-321")
		require.NoError(t, err)
		require.Equal(t, "bot-321", got.Session.Name)
		require.Equal(t, "WORKING", got.Session.Status)
	}
}

// M4 (issue 23): a key echoed in another letter case or in part leaves
// no trace in the error either.
func TestRedactsEchoesInAnyCaseAndInPart(t *testing.T) {
	t.Parallel()
	for _, echo := range []string{
		strings.ToUpper(wahaKey),
		"bad key " + strings.ToUpper(wahaKey[:1]) + wahaKey[1:] + " and again " + strings.ToLower(wahaKey),
		"first 10: " + wahaKey[:10],
		"last part: " + wahaKey[len(wahaKey)-MinEchoRunForTest:],
		"middle: x" + strings.ToUpper(wahaKey[4:14]) + "y",
	} {
		ts := echoServer(t, 500, nil, `{"message":"`+echo+`"}`)
		_, err := newClient(t, ts.URL, wahaKey).Logout(context.Background(), "a")
		require.Error(t, err)
		for _, text := range errTexts(err) {
			low := strings.ToLower(text)
			for i := 0; i+wahaclient.MinEchoRun <= len(wahaKey); i++ {
				require.NotContains(t, low, wahaKey[i:i+wahaclient.MinEchoRun], "a run of the key in %q", text)
			}
		}
		require.Contains(t, err.Error(), wahaclient.Redacted)
	}
}

// MinEchoRunForTest is wahaclient.MinEchoRun, spelled for slicing.
const MinEchoRunForTest = wahaclient.MinEchoRun

func TestBaseURLPasswordIsASecret(t *testing.T) {
	t.Parallel()
	ts := echoServer(t, 500, nil, `{"message":"you sent {PASS}"}`)
	u, err := url.Parse(ts.URL)
	require.NoError(t, err)
	u.User = url.UserPassword("u", urlSecret)
	res, err := newClient(t, u.String(), wahaKey).Logout(context.Background(), "a")
	require.Nil(t, res)
	requireNoSecret(t, errTexts(err)...)

	// New's own errors do not repeat a URL's password either.
	for _, raw := range []string{"ftp://u:" + urlSecret + "@h", "http://u:" + urlSecret + "@h/?q#f", "u:" + urlSecret + "@h", "http://u:" + urlSecret + "@h:99999x"} {
		_, err := wahaclient.New(wahaclient.Config{BaseURL: raw})
		require.Error(t, err, raw)
		requireNoSecret(t, err.Error())
	}
}

func TestValidatorRedacts(t *testing.T) {
	t.Parallel()
	for _, status := range []int{401, 500} {
		ts := echoServer(t, status, nil, `{"message":"key {CHECK} / {KEY}"}`)
		v, err := wahaclient.NewValidator(wahaclient.ValidatorConfig{URL: ts.URL, APIKey: checkKey, Redact: []string{wahaKey}})
		require.NoError(t, err)
		err = v.Check(context.Background())
		require.Error(t, err)
		requireNoSecret(t, errTexts(err)...)
		require.Contains(t, err.Error(), wahaclient.Redacted)
	}
}

func TestStripUserinfo(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"ftp://u:" + urlSecret + "@h":         "ftp://h",
		"http://u:" + urlSecret + "@h/p?k=1":  "http://h/p?…",
		"http://h:3000/waha":                  "http://h:3000/waha",
		"u:" + urlSecret + "@h":               "u://…",
		"http://u:" + urlSecret + "@h:99999x": "http://…",
		"://" + urlSecret:                     "…",
	} {
		got := wahaclient.StripUserinfo(raw)
		require.Equal(t, want, got, raw)
		requireNoSecret(t, got)
	}
}
