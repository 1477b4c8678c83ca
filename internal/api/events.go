package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/wahaq/wahaq/tasks"
)

// WAHA's webhooks: POST /v1/waha/{instance}/events is the URL to give WAHA
// as its webhook (its session.status events confirm logouts; see
// internal/store/events.go). It is authenticated by WAHA's signature, not by
// a bearer token: WAHA cannot send one. Its rules:
//
//   - Only instances with a secret (webhook_hmac_key_env in the instances
//     file, Config.EventSecrets) take events. Any other instance, known or
//     not, answers 401 like a bad signature, so the route does not tell
//     which instances exist; the log line says which it was.
//   - X-Webhook-Hmac must be the HMAC-SHA512 (hex) of the raw body under the
//     instance's secret, compared in constant time; X-Webhook-Hmac-Algorithm,
//     when sent, must be sha512. Missing or wrong: 401. An unsigned event is
//     never trusted (WAHA 2024.10's unsigned events included).
//   - Only a verified body is parsed. Its signed "timestamp" (ms) must be
//     within MaxEventAge of the server's clock, either way (a replayed body is
//     refused: 400), and it must carry an "id" (400 without).
//   - An event id seen before answers 200 with "duplicate": true and records
//     nothing (one SET NX in Redis, kept store.EventSeenFor): WAHA retries
//     until it gets a 2xx, and sends duplicates.
//   - Events other than session.status answer 200 and are not recorded.
//   - Bounded: bodies up to MaxEventBytes (413), Config.EventRate events a
//     second per instance in each replica (429 with Retry-After: 1, checked
//     before anything else), one Redis script call within eventTimeout
//     (503 when Redis does not answer in time; WAHA sends it again).
//
// Refused events are recorded nowhere: nothing reaches Redis before the
// signature and the timestamp are checked.

// Limits of the event receiver.
const (
	// MaxEventBytes bounds an event's body: a session.status event is
	// about 500 bytes.
	MaxEventBytes = 64 << 10
	// MaxEventAge is how far an event's timestamp may be from the server's
	// clock, in the past or the future.
	MaxEventAge = 5 * time.Minute
	// DefaultEventRate is Config.EventRate's default: events a second per
	// instance, in each replica (a logout makes three; WAHA sends every
	// status change of every session).
	DefaultEventRate = 500
	// eventTimeout bounds the Redis work of one event: WAHA retries slow
	// webhooks, so a late answer only makes more traffic.
	eventTimeout = 2 * time.Second
)

// eventBody is the part of WAHA's envelope the receiver reads.
type eventBody struct {
	ID        string          `json:"id"`
	Timestamp json.Number     `json:"timestamp"`
	Event     string          `json:"event"`
	Session   string          `json:"session"`
	Payload   json.RawMessage `json:"payload"`
}

type statusPayload struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// eventAnswer is the body of a 200 answer to an event.
type eventAnswer struct {
	// Recorded: the event was recorded on a logout.
	Recorded bool `json:"recorded"`
	// Duplicate: the event id was seen before.
	Duplicate bool `json:"duplicate"`
	// Confirmed: the event confirmed the logout.
	Confirmed bool `json:"confirmed"`
	// TaskID is the logout it was recorded on.
	TaskID string `json:"task_id,omitempty"`
	// Ignored says why an event was not recorded ("event": not
	// session.status, "no_logout": no logout of the session to record it on).
	Ignored string `json:"ignored,omitempty"`
}

// eventSource is one instance's secret and rate limit.
type eventSource struct {
	secret []byte
	limit  *rate.Limiter
}

// newEventSources returns the instances that take events (those with a
// non-empty secret).
func newEventSources(secrets map[string]string, perSecond float64) map[string]*eventSource {
	if perSecond <= 0 {
		perSecond = DefaultEventRate
	}
	out := map[string]*eventSource{}
	for in, sec := range secrets {
		if sec == "" {
			continue
		}
		out[in] = &eventSource{secret: []byte(sec), limit: rate.NewLimiter(rate.Limit(perSecond), int(max(perSecond, 1)))}
	}
	return out
}

// eventRefused is the detail of every 401 of the route: the same for an
// instance without a secret and a bad signature.
const eventRefused = "event refused: the instance does not take WAHA events (webhook_hmac_key_env), or X-Webhook-Hmac is missing or is not the HMAC-SHA512 of the body under its secret"

func (s *server) postEvent(w http.ResponseWriter, r *http.Request) {
	instance := r.PathValue("instance")
	src, ok := s.events[instance]
	if !ok {
		s.eventRefused(w, r, instance, "instance takes no events")
		return
	}
	if !src.limit.Allow() {
		s.countEvent(instance, "limited")
		w.Header().Set("Retry-After", "1")
		s.problem(w, r, http.StatusTooManyRequests, fmt.Sprintf("more than %g events a second for instance %s; send it again later", float64(src.limit.Limit()), instance))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxEventBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.countEvent(instance, "refused")
			s.problem(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("an event body must be at most %d bytes", MaxEventBytes))
			return
		}
		s.problem(w, r, http.StatusBadRequest, "cannot read the request body")
		return
	}
	if why := verifyEvent(src.secret, r.Header, body); why != "" {
		s.eventRefused(w, r, instance, why)
		return
	}
	ev, detail := parseEvent(body, time.Now())
	if detail != "" {
		s.countEvent(instance, "refused")
		s.log.Warn().Str("instance", instance).Str("reason", detail).Msg("WAHA event refused")
		s.problem(w, r, http.StatusBadRequest, detail)
		return
	}
	if ev == nil {
		s.countEvent(instance, "ignored")
		s.writeJSON(w, http.StatusOK, eventAnswer{Ignored: "event"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), eventTimeout)
	defer cancel()
	res, err := s.cfg.Inspector.RecordEvent(ctx, instance, *ev)
	if err != nil {
		s.fail(w, r, err, details{})
		return
	}
	ans := eventAnswer{Duplicate: res.Duplicate, TaskID: res.TaskID, Confirmed: res.Confirmed, Recorded: res.TaskID != ""}
	switch {
	case res.Duplicate:
		s.countEvent(instance, "duplicate")
	case res.TaskID == "":
		ans.Ignored = "no_logout"
		s.countEvent(instance, "unmatched")
	case res.Confirmed:
		s.countEvent(instance, "confirmed")
	default:
		s.countEvent(instance, "recorded")
	}
	s.log.Debug().Str("instance", instance).Str("session", ev.Session).Str("status", ev.Status).Str("task_id", res.TaskID).
		Bool("duplicate", res.Duplicate).Bool("confirmed", res.Confirmed).Msg("WAHA event")
	s.writeJSON(w, http.StatusOK, ans)
}

// eventRefused answers 401 and logs why (never the secret or the signature).
func (s *server) eventRefused(w http.ResponseWriter, r *http.Request, instance, why string) {
	label := instance
	if _, ok := s.events[instance]; !ok {
		label = "" // not a configured instance: keep the label set bounded
	}
	s.countEvent(label, "refused")
	s.log.Warn().Str("instance", truncate(instance, 80)).Str("reason", why).Msg("WAHA event refused")
	s.problem(w, r, http.StatusUnauthorized, eventRefused)
}

func (s *server) countEvent(instance, result string) {
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(instance, result)
	}
}

// verifyEvent checks the signature of body; it returns why it fails, or "".
func verifyEvent(secret []byte, h http.Header, body []byte) string {
	if alg := h.Get("X-Webhook-Hmac-Algorithm"); alg != "" && !strings.EqualFold(alg, "sha512") {
		return "X-Webhook-Hmac-Algorithm is not sha512"
	}
	sig := strings.TrimSpace(h.Get("X-Webhook-Hmac"))
	if sig == "" {
		return "unsigned"
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return "X-Webhook-Hmac is not hex"
	}
	m := hmac.New(sha512.New, secret)
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return "wrong signature"
	}
	return ""
}

// parseEvent reads a verified body: the event to record, nil for an event
// that is not session.status, or a detail for a 400.
func parseEvent(body []byte, now time.Time) (*tasks.SessionEvent, string) {
	var b eventBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, "the body is not a JSON object: " + err.Error()
	}
	if b.Timestamp == "" {
		return nil, `the event has no "timestamp" (WAHA 2025.x and later send one; older servers' events cannot be verified as fresh)`
	}
	ms, err := strconv.ParseInt(string(b.Timestamp), 10, 64)
	if err != nil {
		return nil, `"timestamp" must be Unix milliseconds`
	}
	at := time.UnixMilli(ms)
	if d := now.Sub(at); d > MaxEventAge || d < -MaxEventAge {
		return nil, fmt.Sprintf("stale event: its timestamp %s is more than %s from the server's clock", at.UTC().Format(time.RFC3339), MaxEventAge)
	}
	if b.ID == "" {
		return nil, `the event has no "id"`
	}
	if b.Event != "session.status" {
		return nil, ""
	}
	var p statusPayload
	if err := json.Unmarshal(b.Payload, &p); err != nil || !statusRE.MatchString(p.Status) {
		return nil, `a session.status event needs "payload": {"name", "status"} with a status such as SCAN_QR_CODE (capitals and _, at most 64)`
	}
	session := b.Session
	if session == "" {
		session = p.Name
	}
	if err := tasks.ValidateSessionName(session); err != nil {
		return nil, "the event's session: " + err.Error()
	}
	return &tasks.SessionEvent{ID: truncate(b.ID, 128), Session: session, Status: p.Status, At: at}, ""
}

// statusRE is what a WAHA status looks like (STOPPED, SCAN_QR_CODE,
// PASSKEY_REQUIRED, …); the record stores it between ':' separators.
var statusRE = regexp.MustCompile(`^[A-Z_]{1,64}$`)
