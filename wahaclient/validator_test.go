package wahaclient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/wahaclient"
)

// validationService answers with status and counts calls, checking the bearer token.
func validationService(t *testing.T, status *atomic.Int32) (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer "+testKey {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(ts.Close)
	return ts, &calls
}

func TestValidatorAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int32
		key    string
		kind   error // nil = valid
	}{
		{"200 valid", 200, testKey, nil},
		{"204 valid", 204, testKey, nil},
		{"401 wrong key", 200, "wrong", wahaclient.ErrUnauthorized},
		{"403 expired subscription", 403, testKey, wahaclient.ErrForbidden},
		{"500 transient", 500, testKey, wahaclient.ErrTransient},
		{"404 is not an auth answer", 404, testKey, wahaclient.ErrTransient},
		{"422 is not an auth answer", 422, testKey, wahaclient.ErrTransient},
		{"429 transient", 429, testKey, wahaclient.ErrTransient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var st atomic.Int32
			st.Store(tc.status)
			ts, calls := validationService(t, &st)
			v, err := wahaclient.NewValidator(wahaclient.ValidatorConfig{URL: ts.URL, APIKey: tc.key})
			require.NoError(t, err)
			err = v.Check(context.Background())
			if tc.kind == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.kind)
			var ae *wahaclient.APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, "validate", ae.Op)
			requireNoKey(t, err)
			// Failures are not cached: the next check asks again.
			_ = v.Check(context.Background())
			require.Equal(t, int32(2), calls.Load())
		})
	}
}

func TestValidatorCachesPositiveAnswers(t *testing.T) {
	t.Parallel()
	var st atomic.Int32
	st.Store(200)
	ts, calls := validationService(t, &st)
	v, err := wahaclient.NewValidator(wahaclient.ValidatorConfig{URL: ts.URL, APIKey: testKey})
	require.NoError(t, err)
	for range 50 {
		require.NoError(t, v.Check(context.Background()))
	}
	require.Equal(t, int32(1), calls.Load(), "one call for a whole bulk teardown")

	// Invalidate forces a fresh answer, which is now negative and not cached.
	st.Store(403)
	v.Invalidate()
	require.ErrorIs(t, v.Check(context.Background()), wahaclient.ErrForbidden)
	require.ErrorIs(t, v.Check(context.Background()), wahaclient.ErrForbidden)
	require.Equal(t, int32(3), calls.Load())

	// A negative CacheTTL disables the cache.
	st.Store(200)
	nc, err := wahaclient.NewValidator(wahaclient.ValidatorConfig{URL: ts.URL, APIKey: testKey, CacheTTL: -1})
	require.NoError(t, err)
	require.NoError(t, nc.Check(context.Background()))
	require.NoError(t, nc.Check(context.Background()))
	require.Equal(t, int32(5), calls.Load())
}

func TestValidatorSharesInFlightCall(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	entered := make(chan struct{}, 100)
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		entered <- struct{}{}
		<-release
		w.WriteHeader(200)
	}))
	t.Cleanup(ts.Close)
	v, err := wahaclient.NewValidator(wahaclient.ValidatorConfig{URL: ts.URL})
	require.NoError(t, err)

	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = v.Check(context.Background())
		}()
	}
	// One caller that gives up early must not fail the others.
	ctx, cancel := context.WithCancel(context.Background())
	quitter := make(chan error, 1)
	go func() { quitter <- v.Check(ctx) }()

	<-entered
	cancel()
	qerr := <-quitter
	require.ErrorIs(t, qerr, context.Canceled)
	require.ErrorIs(t, qerr, wahaclient.ErrTransient)
	// Callers that arrive after the release find the cached answer, so the
	// count below is 1 whatever the scheduling, unless calls are not shared.
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int32(1), calls.Load())
}

func TestValidatorTimeoutAndConfig(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(block); ts.Close() })
	v, err := wahaclient.NewValidator(wahaclient.ValidatorConfig{URL: ts.URL, Timeout: 50 * time.Millisecond})
	require.NoError(t, err)
	err = v.Check(context.Background())
	require.ErrorIs(t, err, wahaclient.ErrTransient)
	require.Contains(t, err.Error(), "per-call timeout of 50ms")

	for _, bad := range []string{"", "not a url", "ftp://x", "/relative"} {
		_, err := wahaclient.NewValidator(wahaclient.ValidatorConfig{URL: bad})
		require.Error(t, err, bad)
	}
	var nilV *wahaclient.Validator
	require.NoError(t, nilV.Check(context.Background()), "a nil validator accepts everything")
	nilV.Invalidate()
}
