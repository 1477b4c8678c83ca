package wahafake

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/wahaq/wahaq/wahaclient"
)

// Webhook configures the session.status webhooks the fake sends when a
// session's status changes, following ../shared/waha-api.md ("Webhooks" in
// "The current server line"): a logout of a running session emits STOPPED,
// STARTING and SCAN_QR_CODE, in that order; a logout of a STOPPED session
// emits nothing, as on a real server.
//
// The current line (the default) sends the envelope
//
//	{"id":"evt_<lower-case ULID>","timestamp":<ms>,"event":"session.status","session",
//	 "metadata","me","payload":{"name","status","statuses":[{"status","timestamp"}],"data"},
//	 "engine","environment"}
//
// with X-Webhook-Request-Id (a fresh lower-case ULID per POST) and
// X-Webhook-Timestamp (ms) headers and, when HMACKey is set, X-Webhook-Hmac
// (HMAC-SHA512 of the raw body, hex) and X-Webhook-Hmac-Algorithm: sha512.
// A delivery that does not get a 2xx is retried with exponential backoff,
// the same body each time, up to Attempts POSTs. Core sends the 2024.10.8
// Core variant instead: no id, no timestamp, no signature, one POST whatever
// the answer, with User-Agent: WAHA/<Version>.
//
// Events are delivered in order by one sender goroutine per server, from a
// queue of WebhookQueue events (the newest are dropped, and counted, when it
// is full).
type Webhook struct {
	// URL receives the POSTs. "" sends nothing (the default).
	URL string
	// HMACKey signs the body (WAHA's WHATSAPP_HOOK_HMAC_KEY). Defaults to
	// "": unsigned. Ignored by Core.
	HMACKey string
	// Core sends the 2024.10.8 Core variant (see Webhook). Defaults to
	// false: the current line.
	Core bool
	// Attempts bounds the POSTs of one delivery (the first and its
	// retries). Defaults to DefaultWebhookAttempts. Core sends once.
	Attempts int
	// Backoff is the wait before the first retry; each next wait doubles,
	// up to MaxWebhookBackoff. Defaults to DefaultWebhookBackoff.
	Backoff time.Duration
	// Duplicates is a fault knob: every event is delivered 1+Duplicates
	// times (the same id and body), as WAHA's retries and restarts do.
	// Defaults to 0.
	Duplicates int
	// Version is the WAHA version the environment (and Core's User-Agent)
	// names. Defaults to "2026.7.1", or "2024.10.8" for Core.
	Version string
}

// Bounds and defaults of Webhook.
const (
	// DefaultWebhookAttempts is Webhook.Attempts' default.
	DefaultWebhookAttempts = 5
	// DefaultWebhookBackoff is Webhook.Backoff's default.
	DefaultWebhookBackoff = 100 * time.Millisecond
	// MaxWebhookBackoff caps one wait between retries.
	MaxWebhookBackoff = 5 * time.Second
	// WebhookQueue is how many events may wait for the sender.
	WebhookQueue = 4096
	// webhookTimeout bounds one POST.
	webhookTimeout = 5 * time.Second
)

// WebhookStats counts webhook deliveries since the server started.
type WebhookStats struct {
	// Events is the number of events emitted (duplicates count once).
	Events int `json:"events"`
	// Posts is the number of POSTs made, retries and duplicates included.
	Posts int `json:"posts"`
	// Delivered counts deliveries that got a 2xx.
	Delivered int `json:"delivered"`
	// Failed counts deliveries that gave up (attempts used up, or Core's
	// single POST without a 2xx).
	Failed int `json:"failed"`
	// Dropped counts events lost to a full queue.
	Dropped int `json:"dropped"`
}

// hookState is the server's webhook sender: configuration, queue, counters.
type hookState struct {
	mu      sync.Mutex
	cfg     Webhook
	queue   chan hookEvent
	quit    chan struct{}
	stopped chan struct{}
	started bool
	closed  bool
	stats   WebhookStats
	history map[string][]statusAt // per session, the last few statuses
	client  *http.Client
}

type statusAt struct {
	Status    string `json:"status"`
	Timestamp int64  `json:"timestamp"`
}

// hookEvent is one event queued for delivery, its body already written so
// that retries and duplicates send the same bytes.
type hookEvent struct {
	cfg  Webhook
	body []byte
}

// SetWebhook configures the session.status webhooks (see Webhook); a zero
// Webhook turns them off. Events already queued go out under the
// configuration they were queued with.
func (s *Server) SetWebhook(w Webhook) error {
	if w.URL != "" {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("wahafake: webhook URL %q is not an http:// or https:// URL", w.URL)
		}
	}
	if w.Attempts < 0 || w.Backoff < 0 || w.Duplicates < 0 {
		return errors.New("wahafake: webhook attempts, backoff and duplicates must not be negative")
	}
	h := s.hooks()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cfg = w
	return nil
}

// WebhookStats returns the webhook counters.
func (s *Server) WebhookStats() WebhookStats {
	h := s.hooks()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stats
}

// hooks returns the server's webhook state, made on first use.
func (s *Server) hooks() *hookState {
	s.hookOnce.Do(func() {
		s.hook = &hookState{history: map[string][]statusAt{}, client: &http.Client{Timeout: webhookTimeout}}
		s.hook.cfg = s.opts.Webhook
	})
	return s.hook
}

// statusChanged is the hook of the session code: session name went through
// statuses, in order, now. It queues one event per status and never blocks
// (it may be called under s.mu).
func (s *Server) statusChanged(name string, me *wahaclient.Me, statuses ...string) {
	h := s.hooks()
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now().UnixMilli()
	for i, st := range statuses {
		// one millisecond apart, so that the order is in the timestamps too
		at := statusAt{Status: st, Timestamp: now + int64(i)}
		hist := append(h.history[name], at)
		if len(hist) > 5 {
			hist = hist[len(hist)-5:]
		}
		h.history[name] = hist
		if h.cfg.URL == "" || h.closed {
			continue
		}
		h.stats.Events++
		ev := hookEvent{cfg: h.cfg, body: envelope(h.cfg, name, me, at, hist)}
		h.startLocked()
		select {
		case h.queue <- ev:
		default:
			h.stats.Dropped++
		}
	}
}

// qrDelay is how long after a logout's answer the restarted session reports
// SCAN_QR_CODE: on a real server STOPPED and STARTING come before the answer,
// the QR code a moment after it.
const qrDelay = 50 * time.Millisecond

// statusChangedAfter is statusChanged in d.
func (s *Server) statusChangedAfter(d time.Duration, name, status string) {
	time.AfterFunc(d, func() { s.statusChanged(name, nil, status) })
}

func (h *hookState) startLocked() {
	if h.started {
		return
	}
	h.started = true
	h.queue = make(chan hookEvent, WebhookQueue)
	h.quit = make(chan struct{})
	h.stopped = make(chan struct{})
	go h.send()
}

// closeWebhooks stops the sender (Close calls it): queued events are
// dropped, a delivery in progress ends at its next wait or POST.
func (s *Server) closeWebhooks() {
	h := s.hooks()
	h.mu.Lock()
	h.closed = true
	started := h.started
	if started {
		close(h.quit)
	}
	h.mu.Unlock()
	if started {
		<-h.stopped
	}
}

func (h *hookState) send() {
	defer close(h.stopped)
	for {
		select {
		case <-h.quit:
			return
		case ev := <-h.queue:
			for range 1 + ev.cfg.Duplicates {
				ok := h.deliver(ev)
				h.mu.Lock()
				if ok {
					h.stats.Delivered++
				} else {
					h.stats.Failed++
				}
				h.mu.Unlock()
			}
		}
	}
}

// deliver POSTs one event until a 2xx, within the configured attempts.
func (h *hookState) deliver(ev hookEvent) bool {
	attempts := ev.cfg.Attempts
	if attempts == 0 {
		attempts = DefaultWebhookAttempts
	}
	if ev.cfg.Core {
		attempts = 1
	}
	wait := ev.cfg.Backoff
	if wait == 0 {
		wait = DefaultWebhookBackoff
	}
	for i := range attempts {
		if i > 0 {
			select {
			case <-h.quit:
				return false
			case <-time.After(wait):
			}
			wait = min(2*wait, MaxWebhookBackoff)
		}
		if h.post(ev) {
			return true
		}
	}
	return false
}

func (h *hookState) post(ev hookEvent) bool {
	h.mu.Lock()
	h.stats.Posts++
	h.mu.Unlock()
	req, err := http.NewRequest(http.MethodPost, ev.cfg.URL, bytes.NewReader(ev.body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	if ev.cfg.Core {
		req.Header.Set("User-Agent", "WAHA/"+version(ev.cfg))
	} else {
		req.Header.Set("X-Webhook-Request-Id", newULID())
		req.Header.Set("X-Webhook-Timestamp", fmt.Sprint(time.Now().UnixMilli()))
		if ev.cfg.HMACKey != "" {
			req.Header.Set("X-Webhook-Hmac", Sign(ev.cfg.HMACKey, ev.body))
			req.Header.Set("X-Webhook-Hmac-Algorithm", "sha512")
		}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

// Sign is WAHA's webhook signature of body under key: HMAC-SHA512, hex.
func Sign(key string, body []byte) string {
	m := hmac.New(sha512.New, []byte(key))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func version(w Webhook) string {
	switch {
	case w.Version != "":
		return w.Version
	case w.Core:
		return "2024.10.8"
	default:
		return "2026.7.1"
	}
}

type (
	hookEnvironment struct {
		Version string `json:"version"`
		Engine  string `json:"engine"`
		Tier    string `json:"tier"`
		Browser any    `json:"browser"`
	}
	hookPayload struct {
		Name     string          `json:"name"`
		Status   string          `json:"status"`
		Statuses []statusAt      `json:"statuses,omitempty"`
		Data     json.RawMessage `json:"data,omitempty"`
	}
	// hookEnvelope is the current line's body, in WAHA's key order.
	hookEnvelope struct {
		ID          string          `json:"id"`
		Timestamp   int64           `json:"timestamp"`
		Event       string          `json:"event"`
		Session     string          `json:"session"`
		Metadata    json.RawMessage `json:"metadata"`
		Me          *wahaclient.Me  `json:"me"`
		Payload     hookPayload     `json:"payload"`
		Engine      string          `json:"engine"`
		Environment hookEnvironment `json:"environment"`
	}
	// coreEnvelope is 2024.10.8 Core's body: no id, no timestamp.
	coreEnvelope struct {
		Event       string          `json:"event"`
		Session     string          `json:"session"`
		Me          *wahaclient.Me  `json:"me"`
		Payload     hookPayload     `json:"payload"`
		Engine      string          `json:"engine"`
		Environment hookEnvironment `json:"environment"`
	}
)

// envelope writes the body of one session.status event.
func envelope(cfg Webhook, name string, me *wahaclient.Me, at statusAt, hist []statusAt) []byte {
	env := hookEnvironment{Version: version(cfg), Engine: "NOWEB", Tier: "PLUS", Browser: nil}
	var v any
	if cfg.Core {
		env.Tier = "CORE"
		v = coreEnvelope{Event: "session.status", Session: name, Me: copyMe(me),
			Payload: hookPayload{Name: name, Status: at.Status}, Engine: "NOWEB", Environment: env}
	} else {
		v = hookEnvelope{ID: "evt_" + newULID(), Timestamp: at.Timestamp, Event: "session.status", Session: name,
			Metadata: json.RawMessage(`{}`), Me: copyMe(me),
			Payload: hookPayload{Name: name, Status: at.Status, Statuses: append([]statusAt(nil), hist...), Data: json.RawMessage(`{}`)},
			Engine:  "NOWEB", Environment: env}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// newULID returns a ULID in lower case, as WAHA writes its event ids: 48
// bits of Unix milliseconds and 80 random bits in Crockford's base32.
func newULID() string {
	var b [16]byte
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(time.Now().UnixMilli()))
	copy(b[:6], ms[2:])
	_, _ = rand.Read(b[6:])
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	// 128 bits as 26 digits of 5 bits, the first digit holding 3 bits
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	out := make([]byte, 26)
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out)
}

// controlWebhook serves the control API's /_fake/webhook: GET the
// counters, POST a configuration.
func (s *Server) controlWebhook(w http.ResponseWriter, r *http.Request, body []byte) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, s.WebhookStats())
	case http.MethodPost:
		var req struct {
			URL        string    `json:"url"`
			HMACKey    string    `json:"hmac_key"`
			Core       bool      `json:"core"`
			Attempts   int       `json:"attempts"`
			Backoff    *duration `json:"backoff"`
			Duplicates int       `json:"duplicates"`
			Version    string    `json:"version"`
		}
		if err := decodeStrict(body, &req); err != nil {
			controlFail(w, http.StatusBadRequest, "bad JSON body: %v", err)
			return
		}
		cfg := Webhook{URL: req.URL, HMACKey: req.HMACKey, Core: req.Core, Attempts: req.Attempts, Duplicates: req.Duplicates, Version: req.Version}
		if req.Backoff != nil {
			cfg.Backoff = timeDuration(*req.Backoff)
		}
		if err := s.SetWebhook(cfg); err != nil {
			controlFail(w, http.StatusBadRequest, "%v", err)
			return
		}
		controlOK(w)
	default:
		w.Header().Set("Allow", "GET, POST")
		controlFail(w, http.StatusMethodNotAllowed, "%s %s needs GET or POST", r.Method, r.URL.Path)
	}
}
