package wahaclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultValidatorTimeout and DefaultValidatorCacheTTL are the Validator's
// defaults for zero ValidatorConfig fields.
const (
	DefaultValidatorTimeout  = 10 * time.Second
	DefaultValidatorCacheTTL = time.Minute
)

// ValidatorConfig configures the optional subscription/key check that runs
// before each logout (the guard the n8n WAHA node had: a separate service says
// whether the subscription and key are still valid).
type ValidatorConfig struct {
	// URL of the validation service; required. It is called with GET (or Method).
	URL string
	// APIKey is sent as "Authorization: Bearer <APIKey>"; never in URLs, errors
	// or logs.
	APIKey string
	// CacheTTL is how long a positive answer is reused, so that a bulk teardown
	// of thousands of sessions does not call the service once per task.
	// Negative answers and errors are never cached: a fixed key must work at
	// once. Default (zero): DefaultValidatorCacheTTL, 1 minute; negative
	// disables caching.
	CacheTTL time.Duration
	// HTTPClient performs the call. Default: a client with the same tuned
	// transport as Client. Redirects are never followed (they would carry the
	// bearer token's request elsewhere as a GET without it, hiding the real
	// answer).
	HTTPClient *http.Client
	// Timeout bounds one check. Default (zero or negative):
	// DefaultValidatorTimeout, 10 s.
	Timeout time.Duration
	// Method is the HTTP method of the check. Default: GET.
	Method string
	// Redact lists further secrets (e.g. the WAHA keys) to remove from the
	// service's answers before they become part of an error. APIKey and a
	// password in URL are always redacted. Defaults to none beyond those.
	Redact []string
}

// Validator runs the subscription/key check. It is safe for concurrent use:
// callers arriving while a check is in flight share its single HTTP call.
// A nil *Validator accepts everything, so callers can hold an optional one
// and call Check unconditionally.
type Validator struct {
	url     string
	method  string
	apiKey  string
	ttl     time.Duration
	timeout time.Duration
	hc      *http.Client
	redact  *redactor
	group   singleflight.Group
	now     func() time.Time

	mu         sync.Mutex
	validUntil time.Time
}

// NewValidator checks cfg and returns a Validator. It makes no network call.
func NewValidator(cfg ValidatorConfig) (*Validator, error) {
	raw := strings.TrimSpace(cfg.URL)
	u, err := url.Parse(raw)
	if raw == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("wahaclient: the validation URL must be an absolute http:// or https:// URL")
	}
	if strings.ContainsAny(cfg.APIKey, "\r\n") {
		return nil, errors.New("wahaclient: the validation API key contains a line break; check how it was read")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: defaultTransport()}
	}
	own := *hc
	own.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	ttl := cfg.CacheTTL
	if ttl == 0 {
		ttl = DefaultValidatorCacheTTL
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultValidatorTimeout
	}
	method := strings.ToUpper(strings.TrimSpace(cfg.Method))
	if method == "" {
		method = http.MethodGet
	}
	secrets := append([]string{cfg.APIKey}, urlSecrets(u)...)
	return &Validator{url: u.String(), method: method, apiKey: cfg.APIKey, ttl: ttl, timeout: timeout, hc: &own, now: time.Now,
		redact: newRedactor(append(secrets, cfg.Redact...)...)}, nil
}

// Check returns nil when the service says the key and subscription are valid
// (2xx, or a positive answer cached within CacheTTL). A 401 or 403 is an
// *APIError with Op "validate" and Kind ErrUnauthorized or ErrForbidden: the
// caller should stop without calling WAHA and not retry. Anything else
// (another status, a transport error, a timeout) is Kind ErrTransient.
//
// Concurrent callers share one in-flight call. Each caller still honours its
// own ctx: one caller giving up does not fail the others, because the shared
// call runs detached from any single caller's cancellation (bounded by
// Timeout).
func (v *Validator) Check(ctx context.Context) error {
	if v == nil {
		return nil
	}
	if v.cached() {
		return nil
	}
	ch := v.group.DoChan("check", func() (any, error) {
		// Another caller may have refreshed the cache while we queued.
		if v.cached() {
			return nil, nil
		}
		err := v.call(context.WithoutCancel(ctx))
		if err == nil && v.ttl > 0 {
			v.mu.Lock()
			v.validUntil = v.now().Add(v.ttl)
			v.mu.Unlock()
		}
		return nil, err
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return classify("validate", response{Err: ctx.Err(), CallerErr: ctx.Err(), Timeout: v.timeout, Redact: v.redact})
	}
}

func (v *Validator) cached() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return !v.validUntil.IsZero() && v.now().Before(v.validUntil)
}

// Invalidate drops a cached positive answer, e.g. after WAHA itself answered
// 401, so the next Check asks the service again.
func (v *Validator) Invalidate() {
	if v == nil {
		return
	}
	v.mu.Lock()
	v.validUntil = time.Time{}
	v.mu.Unlock()
}

func (v *Validator) call(ctx context.Context) error {
	callCtx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(callCtx, v.method, v.url, nil)
	if err != nil {
		return &APIError{Op: "validate", Kind: ErrTransient, Message: "cannot build the request", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "wahaq-wahaclient/1")
	if v.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+v.apiKey)
	}
	resp, err := v.hc.Do(req)
	if err != nil {
		return classify("validate", response{Err: err, Timeout: v.timeout, Redact: v.redact})
	}
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		_ = resp.Body.Close()
	}()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	apiErr := classify("validate", response{Status: resp.StatusCode, Header: resp.Header, Body: body, Now: v.now(), Redact: v.redact})
	if apiErr == nil {
		return nil
	}
	if apiErr.Kind != ErrUnauthorized && apiErr.Kind != ErrForbidden {
		// Only an explicit 401/403 says the key is bad; a 404 or 422 from the
		// validation service says nothing about the key, so it is retried.
		apiErr.Kind = ErrTransient
	}
	return apiErr
}
