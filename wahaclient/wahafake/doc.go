// Package wahafake is an in-process fake WAHA server for tests: a real HTTP
// server on loopback that answers the session calls wahaq makes exactly like
// WAHA does (status codes, bodies, key orders and headers as observed on a
// real WAHA Core 2024.10.8 and read in WAHA's source), plus knobs to script
// failures and counters to assert on.
//
// Typical use:
//
//	srv := wahafake.NewT(t, wahafake.Options{APIKey: "k", Sessions: 3})
//	srv.Script("session-0001", wahafake.Fault{Status: 503, Times: 2})
//	c, _ := wahaclient.New(wahaclient.Config{BaseURL: srv.URL(), APIKey: "k"})
//	...
//	require.Equal(t, 3, srv.LogoutCalls("session-0001"))
//
// What it serves:
//
//	GET  /api/sessions[?all=true]          200 list, entries without engine (STOPPED left out without all; 400 for a bad all)
//	GET  /api/sessions/{s}                 200 session with engine, 404 Session not found (also on Core)
//	POST /api/sessions/{s}/logout          201 session after logout, 404, 422 on Core (absent when Legacy)
//	POST /api/sessions/logout {"name"}     201 empty body, deletes the session, 201 again once deleted;
//	                                       400 "Unexpected token ..." for a body that is not JSON,
//	                                       422 without a name (Core's message on Core) (absent when NoDeprecatedRoute)
//	GET  /api/version                      200 {"version","engine","tier","browser"}
//	GET  /api/server/version               the same (current line only)
//	DELETE /api/sessions/{s}               200, no body, stop + logout + delete, idempotent (current line only)
//	anything else                          404 {"statusCode":404,"message":"Cannot METHOD /path","error":"Not Found"}
//
// Every WAHA answer carries Express's X-Powered-By, Access-Control-Allow-Origin: *,
// ETag and Keep-Alive: timeout=5 headers.
//
// A logout of a STOPPED session is fast and leaves it STOPPED; a logout of a
// running one takes Options.LogoutLatency, answers STARTING and leaves the
// session in SCAN_QR_CODE with me null. Logouts of one session are serialised.
// Two logouts of one running session at once crashed a real WAHA, so the fake
// counts overlapping logouts of a session in ConcurrentSameSession (tests
// assert it stays 0), and Options.CrashOnConcurrentLogout drops the later
// call's connection as the real server did.
//
// Authentication follows WAHA: X-Api-Key or ?x-api-key=, 401 for a missing or
// wrong key, 403 {"message":"Forbidden","statusCode":403} for a scoped key
// used outside its sessions or actions (logout needs control, DELETE needs
// delete). Faults (Script, SetFlaky, SetDefaultFault) apply to logout calls
// only, before authentication, like a proxy or a failing server in front of
// WAHA; Fault{Status: 501} answers WAHA's "not implemented by the engine" and
// Fault{LockTimeout: true} its 500 "async-lock timed out in queue <session>".
//
// By default the fake is the observed WAHA Core 2024.10.8 (any key accepted
// when none is set). Options.CurrentLine (or SetLine, or POST /_fake/line)
// makes it WAHA's current line, 2025.10.3 and later, as line.go describes:
// a key is always required, generated when none usable is set; scoped keys
// carry actions (Options.Keys); DELETE and /api/server/version exist; and
// Options.LockTimeout answers the lock timeout when a session's lock stays
// held.
//
// Listings: GenerateSessions makes hundreds of thousands of sessions exist
// without storing them (the listing writes them as it is sent, without an
// ETag; a logout or GET of one stores it), and InjectListEntries puts
// entries a real WAHA never sends (BadListEntries: not objects, null names,
// "../etc", "a/b") at the start of every listing.
//
// Webhooks (Options.Webhook, SetWebhook, POST /_fake/webhook): a logout of a
// running session sends session.status events STOPPED, STARTING and
// SCAN_QR_CODE to a configured URL (nothing for a STOPPED session), as the
// current WAHA line does, following ../shared/waha-api.md: the envelope with
// an "evt_<ULID>" id and a ms timestamp, X-Webhook-Request-Id and
// X-Webhook-Timestamp headers, an HMAC-SHA512 X-Webhook-Hmac with a key,
// retries with backoff until a 2xx (bounded), duplicates on request; or, with
// Webhook.Core, as 2024.10.8 Core did: no id, unsigned, once. See webhook.go.
//
// The control API under /_fake/ (not part of WAHA, never needs the key) lets
// shell scripts and other processes do the same; see GET /_fake/ and the
// fakewaha command.
package wahafake
