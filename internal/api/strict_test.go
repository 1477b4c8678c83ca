package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
)

// allocated is the bytes the heap handed out while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDeepBodyRefusedCheaply is issue 23's S1: a token holder sent
// `{"sessions":` and 100,000 '[' (200 KB, under the body limit) and serve
// grew to 23.5 GB, because the key walk built a path string at every
// level. Every body route now answers 400 with a detail, and the whole
// request allocates a few times the body, however deep it nests.
//
// Not parallel: it reads the process's allocation counter, which parallel
// tests would add to.
func TestDeepBodyRefusedCheaply(t *testing.T) {
	e := newEnv(t)
	for _, depth := range []int{10_000, 100_000} {
		body := `{"sessions":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
		for _, path := range []string{"/v1/batches", "/v1/logouts", "/v1/dlq/requeue"} {
			var w *httptest.ResponseRecorder
			n := allocated(func() { w = e.do(http.MethodPost, path, body) })
			t.Logf("%s, depth %d (%d bytes): %d bytes allocated", path, depth, len(body), n)
			// The body is read whole (io.ReadAll doubles its buffer up to
			// 2× the body); 16× leaves room for logging and the problem.
			require.Less(t, n, uint64(16*len(body)), "%s at depth %d allocated %d bytes for a %d-byte body", path, depth, n, len(body))
			p := requireProblem(t, w, http.StatusBadRequest)
			require.Contains(t, p.Detail, "more than 32 levels deep", "%s at depth %d", path, depth)
		}
	}
	e.requireNothingEnqueued()
}

// TestCheckShape: the depth bound counts brackets outside strings only,
// and the token bound counts values however they are spelled.
func TestCheckShape(t *testing.T) {
	t.Parallel()
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	many := "[" + strings.Repeat("1,", maxJSONTokens) + "1]"
	for _, tc := range []struct {
		name  string
		body  string
		depth bool // refused for depth
		long  bool // refused for tokens
	}{
		{"flat", `{"sessions":["a","b"]}`, false, false},
		{"at the bound", deep(maxJSONDepth), false, false},
		{"past the bound", deep(maxJSONDepth + 1), true, false},
		{"objects count", strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1), true, false},
		{"brackets in a string", `{"session":"` + deep(1000) + `"}`, false, false},
		{"escaped quote keeps the string open", `{"session":"\"` + deep(1000) + `"}`, false, false},
		{"escaped backslash closes the string", `{"session":"\\"` + deep(maxJSONDepth+1) + `}`, true, false},
		{"closing first does not earn depth", strings.Repeat("]", 100) + deep(maxJSONDepth+1), true, false},
		{"too many values", many, false, true},
		{"as many strings as a full batch", `{"sessions":[` + strings.Repeat(`"a",`, tasks.DefaultMaxBatch) + `"a"]}`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := checkShape([]byte(tc.body))
			var se *shapeError
			if !tc.depth && !tc.long {
				require.NoError(t, err)
				return
			}
			require.True(t, errors.As(err, &se), "got %v", err)
			require.Equal(t, tc.depth, se.Depth, se.Error())
		})
	}
}

// FuzzStrict fuzzes the strict decoder with a memory budget: whatever the
// body, it never panics, it allocates at most a bounded multiple of the
// body's size, and a body it accepts is one encoding/json reads the same
// way. scripts/test runs it for a few seconds.
func FuzzStrict(f *testing.F) {
	for _, s := range []string{
		`{"session":"s"}`, `{"sessions":["a","b"],"in":"1h"}`, `{"all":true}`, `{"ids":["x"]}`,
		`{"sessions":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`,
		`{"session":"[[[[\"]]"}`, `{"session":"s","session":"t"}`, `{"SESSION":"s"}`,
		`{"a":{"b":{"c":[1,2,{"d":null}]}}}`, `{"session":"s"} x`, `[`, `"`, `\`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, target := range []func() any{
			func() any { return &logoutRequest{} },
			func() any { return &batchRequest{} },
			func() any { return &tasks.Selection{} },
			func() any { return &map[string]any{} },
		} {
			v := target()
			var err error
			n := allocated(func() { err = strictDecode(data, v) })
			if budget := uint64(64<<10 + 256*len(data)); n > budget {
				t.Fatalf("decoding %d bytes into %T allocated %d bytes (budget %d)", len(data), v, n, budget)
			}
			if err != nil {
				continue
			}
			w := target()
			if err := json.Unmarshal(data, w); err != nil {
				t.Fatalf("strictDecode accepted %q into %T, encoding/json refused it: %v", data, v, err)
			}
			a, _ := json.Marshal(v)
			b, _ := json.Marshal(w)
			if !bytes.Equal(a, b) {
				t.Fatalf("strictDecode read %q as %s, encoding/json as %s", data, a, b)
			}
		}
	})
}
