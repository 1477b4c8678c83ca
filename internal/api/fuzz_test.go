package api_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/wahaq/wahaq/internal/api"
	"github.com/wahaq/wahaq/tasks"
)

const fuzzToken = "fuzz-token-3b9f"

// fuzzAPI is the API on an in-memory Redis, one per fuzz worker process.
func fuzzAPI(f *testing.F) (http.Handler, *miniredis.Miniredis) {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(m.Close)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	f.Cleanup(func() { _ = rdb.Close() })
	cfg := tasks.Config{Redis: rdb, Namespace: "fuzz", Instances: []string{"default", "eu"}}
	p, err := tasks.NewProducer(cfg)
	if err != nil {
		f.Fatal(err)
	}
	in, err := tasks.NewInspector(cfg)
	if err != nil {
		f.Fatal(err)
	}
	h, err := api.New(api.Config{Producer: p, Inspector: in, Tokens: []string{fuzzToken}})
	if err != nil {
		f.Fatal(err)
	}
	return h, m
}

// fuzzBody posts body to path and checks the API's promise for bad input:
// never a 5xx, and a 4xx leaves Redis exactly as it was (nothing enqueued).
func fuzzBody(t *testing.T, h http.Handler, m *miniredis.Miniredis, path string, body []byte) {
	if len(m.Keys()) > 20_000 {
		m.FlushAll()
	}
	before := m.Keys()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+fuzzToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/problem+json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	code := rec.Code
	if code >= 500 {
		t.Fatalf("POST %s %q answered %d: %s", path, body, code, rec.Body.String())
	}
	if code >= 400 {
		if after := m.Keys(); !slices.Equal(before, after) {
			t.Fatalf("POST %s %q answered %d but Redis changed: %d keys before, %d after", path, body, code, len(before), len(after))
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("POST %s answered %d with Content-Type %q, want a problem", path, code, ct)
		}
		return
	}
	if code != http.StatusOK && code != http.StatusAccepted {
		t.Fatalf("POST %s %q answered %d", path, body, code)
	}
}

// FuzzPostLogout fuzzes the body of POST /v1/logouts.
func FuzzPostLogout(f *testing.F) {
	for _, s := range []string{
		`{"session":"sales-bot"}`,
		`{"instance":"eu","session":"s","in":"30m"}`,
		`{"session":"s","at":"2099-01-01T00:00:00Z"}`,
		`{"session":"s","at":"2001-01-01T00:00:00Z"}`,
		`{"session":"s","at":"2099-01-01T00:00:00Z","in":"1m"}`,
		`{"session":"s","in":"-5s"}`,
		`{"session":"s","in":"9999999999h"}`,
		`{"session":"s","base_url":"http://169.254.169.254/"}`,
		`{"session":"s","url":"http://127.0.0.1:1/"}`,
		`{"session":"s","instance":"http://evil.example/"}`,
		`{"session":"a b"}`, `{"session":""}`, `{"session":null}`, `{"session":5}`,
		`{"session":"s"}{"session":"t"}`, `[]`, `null`, ``, `{`, `{"Session":"s"}`,
		`{"session":"s","session":"../x"}`,
	} {
		f.Add([]byte(s))
	}
	h, m := fuzzAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) { fuzzBody(t, h, m, "/v1/logouts", body) })
}

// FuzzPostBatch fuzzes the body of POST /v1/batches.
func FuzzPostBatch(f *testing.F) {
	for _, s := range []string{
		`{"sessions":["a","b","a"]}`,
		`{"instance":"eu","sessions":["a"],"in":"1h"}`,
		`{"all":true}`,
		`{"all":true,"status":["WORKING","STOPPED"]}`,
		`{"all":true,"status":["NOPE"]}`,
		`{"all":true,"sessions":["a"]}`,
		`{"sessions":[]}`, `{"sessions":null}`, `{"sessions":["a","b c"]}`,
		`{"sessions":["a"],"status":["WORKING"]}`,
		`{"sessions":["a"],"base_url":"http://127.0.0.1:1"}`,
		`{"sessions":["a"],"at":"yesterday"}`,
		`{"sessions":[1,2]}`, `{"all":"yes"}`, `{}`, `[]`,
	} {
		f.Add([]byte(s))
	}
	h, m := fuzzAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) { fuzzBody(t, h, m, "/v1/batches", body) })
}
