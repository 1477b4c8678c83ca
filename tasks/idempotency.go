package tasks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/wahaq/wahaq/internal/store"
)

// Idempotency keys make a retried request safe: the first request with a
// key runs, later ones with the same key and the same request get its
// answer back for IdempotencyTTL, even after the task finished and even if
// the first caller timed out before reading it.
const (
	// IdempotencyTTL is how long an answer is kept.
	IdempotencyTTL = 24 * time.Hour
	// idempotencyHold bounds the reservation of a key whose request is
	// still running; a process that died mid-request frees it then.
	idempotencyHold = time.Minute
	// idempotencyPatience is how long a duplicate waits for the first
	// request to answer before it gets ErrIdempotencyInProgress.
	idempotencyPatience = 3 * time.Second
	// idempotencyRelease bounds the release of a key whose request failed.
	idempotencyRelease = 10 * time.Second
	// MaxIdempotencyKeyLen bounds a key.
	MaxIdempotencyKeyLen = 255
)

// ErrIdempotencyMismatch: the key was used with a different request (HTTP 422).
var ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")

// ErrIdempotencyLimit: the scope (an API token) already holds
// MaxIdempotencyKeys live keys (HTTP 429); nothing was run.
var ErrIdempotencyLimit = errors.New("too many idempotency keys in use")

// MaxIdempotencyKeys bounds the live keys of one scope (one API token)
// over IdempotencyTTL: ~1 KiB each, at most ~10 MiB of Redis per token.
const MaxIdempotencyKeys = 10_000

// ErrIdempotencyInProgress: the first request with the key has not answered
// yet (HTTP 409); retry a moment later.
var ErrIdempotencyInProgress = errors.New("a request with this idempotency key is still in progress")

// Answer is what an idempotent call answered, kept to be given again.
type Answer struct {
	// Status is the HTTP status (the CLI stores its exit code's HTTP
	// equivalent: 200 for success).
	Status int
	// Headers are the headers to give again (JSON object), if any.
	Headers []byte
	// Body is the answer's body.
	Body []byte
}

// Idempotent runs do once per (scope, key) within IdempotencyTTL. scope
// separates callers (the API uses a hash of the bearer token, never the
// token); request is the request's bytes, compared by SHA-256. A repeat
// with the same request returns the stored answer and replayed true; with
// another request, ErrIdempotencyMismatch. A batch that do enqueues with
// EnqueueBatch gets the id IdempotentBatchID derives from (scope, key,
// request), so a retry of a failed request resumes the batch its first try
// started instead of starting another (so do enqueues one batch at most:
// a second EnqueueBatch in the same call names the same batch). do runs with a context that the
// caller's cancellation does not stop, so a client that times out cannot
// leave a half-done request behind. An answer with Status ≥ 400, or an
// error from do, is not kept: a retry runs again. A scope holds at most
// MaxIdempotencyKeys keys at once (ErrIdempotencyLimit).
func (p *Producer) Idempotent(ctx context.Context, scope, key string, request []byte,
	do func(context.Context) (Answer, error)) (a Answer, replayed bool, err error) {
	if key == "" || len(key) > MaxIdempotencyKeyLen {
		return Answer{}, false, fmt.Errorf("%w: an idempotency key is 1 to %d characters", ErrInvalidInput, MaxIdempotencyKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return Answer{}, false, fmt.Errorf("%w: an idempotency key is printable ASCII", ErrInvalidInput)
		}
	}
	sum := sha256.Sum256(request)
	fp := hex.EncodeToString(sum[:])
	// From here on the caller's cancellation does not stop the work: a
	// client that went away must find its answer on the retry. The
	// caller's deadline still holds (the HTTP API's request timeout): a
	// frozen Redis must not hold the request past it.
	wctx := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(wctx, dl)
		defer cancel()
	}
	deadline := time.Now().Add(idempotencyPatience)
	for {
		code, ans, err := p.store.Reserve(wctx, scope, key, fp, idempotencyHold, IdempotencyTTL, MaxIdempotencyKeys)
		if err != nil {
			return Answer{}, false, err
		}
		switch code {
		case store.IdemMismatch:
			return Answer{}, false, ErrIdempotencyMismatch
		case store.IdemFull:
			return Answer{}, false, ErrIdempotencyLimit
		case store.IdemAnswered:
			return Answer{Status: ans.Status, Headers: ans.Headers, Body: ans.Body}, true, nil
		case store.IdemInProgress:
			if time.Now().After(deadline) {
				return Answer{}, false, ErrIdempotencyInProgress
			}
			select {
			case <-ctx.Done():
				return Answer{}, false, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		break
	}
	a, err = do(withIdempotentBatch(wctx, idempotentBatchID(scope, key, fp)))
	// A refused request (4xx: bad input, nothing done) is not kept either:
	// its retry is refused the same way, and keeping it would let anyone
	// with a token fill Redis with refusals (issue 23, M7). Redis answered
	// a moment ago, so the key is released before the answer.
	if err == nil && a.Status >= 400 && a.Status < 500 {
		// Should the release fail, the reservation ends by itself after
		// idempotencyHold; the refusal is still the answer.
		_ = p.store.ReleaseKey(wctx, scope, key)
		return a, false, nil
	}
	if err != nil || a.Status >= 500 {
		// Released in the background, with time of its own: the failure
		// is answered now, and a Redis that just froze or fell over can
		// still take the release a moment later, so a retry runs instead
		// of waiting out idempotencyHold.
		go func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idempotencyRelease)
			defer cancel()
			_ = p.store.ReleaseKey(rctx, scope, key)
		}()
		return a, false, err
	}
	if err := p.store.SaveAnswer(wctx, scope, key, store.Answer{Status: a.Status, Headers: a.Headers, Body: a.Body}, IdempotencyTTL); err != nil {
		return a, false, err
	}
	return a, false, nil
}

// idemBatchKey is the context key of the batch id an idempotent call's
// EnqueueBatch uses.
type idemBatchKey struct{}

func withIdempotentBatch(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, idemBatchKey{}, id)
}

// idempotentBatch returns the batch id given by Idempotent, if any.
func idempotentBatch(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(idemBatchKey{}).(string)
	return id, ok && id != ""
}

// IdempotentBatchID is the id of the batch that an idempotent batch request
// (Idempotent's scope, key and request) creates: the first 16 bytes of
// SHA-256 over "wahaq batch", scope, key and the request's SHA-256 (hex),
// NUL-separated, written as a UUID of version 8 (RFC 9562's custom
// version), so it is a valid batch id. A retry with the same key and
// request names the same batch, and resumes it (Producer.EnqueueBatch);
// another token (scope) or another body names another one.
func IdempotentBatchID(scope, key string, request []byte) string {
	sum := sha256.Sum256(request)
	return idempotentBatchID(scope, key, hex.EncodeToString(sum[:]))
}

func idempotentBatchID(scope, key, fp string) string {
	h := sha256.Sum256([]byte("wahaq batch\x00" + scope + "\x00" + key + "\x00" + fp))
	var u uuid.UUID
	copy(u[:], h[:16])
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u.String()
}
