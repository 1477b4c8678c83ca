package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/access"
	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/internal/console"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
)

// The role tests' tokens (their secrets; the console knows their hashes).
const (
	readToken    = "console-read-token-5d1"
	operateToken = "console-operate-token-5d1"
	scopedToken  = "console-scoped-admin-5d1"
)

// withRoles gives the console a tokens file and an audit log.
func withRoles(env *wahaqtest.Env, log **audit.Log) func(*console.Config) {
	return func(cfg *console.Config) {
		yaml := fmt.Sprintf("tokens:\n  - {name: viewer, sha256: %s, role: read}\n  - {name: oncall, sha256: %s, role: operate}\n  - {name: eu-admin, sha256: %s, role: admin, instances: [eu]}\n",
			access.Hash(readToken), access.Hash(operateToken), access.Hash(scopedToken))
		ts, err := access.ParseFile([]byte(yaml))
		if err != nil {
			panic(err)
		}
		cfg.NamedTokens = ts
		*log = audit.New(store.New(env.Redis, store.Options{Namespace: env.Namespace}), audit.Options{})
		cfg.Audit = *log
	}
}

// TestConsoleRoles: each page shows only the buttons the token may use,
// and each action checks the role and scope again: a forged form of a token
// without the role is refused, changes nothing and is in the audit log.
func TestConsoleRoles(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	dead := deadLetter(t, env, "dl-roles")
	names := env.Fake.AddSessions("r", 3, wahafake.StatusWorking)
	info, err := env.Producer.EnqueueBatch(context.Background(), tasks.BatchRequest{Sessions: names, When: tasks.When{In: time.Hour}})
	require.NoError(t, err)
	var log *audit.Log
	srv := serve(t, env, withRoles(env, &log))
	batchURL := srv.URL + "/ui/batches/" + info.BatchID

	for _, tc := range []struct {
		name, token                          string
		cancel, requeue, purge, auditAllowed bool
	}{
		{name: "read", token: readToken},
		{name: "operate", token: operateToken, cancel: true, requeue: true},
		{name: "admin of WAHAQ_API_TOKENS", token: token, cancel: true, requeue: true, purge: true, auditAllowed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := client(t)
			_, csrf := signIn(t, c, srv.URL, tc.token, nil)
			require.NotEmpty(t, csrf)
			_, body := get(t, c, batchURL)
			require.Equal(t, tc.cancel, strings.Contains(body, "Cancel the batch"), "cancel button")
			_, body = get(t, c, srv.URL+"/ui/dlq")
			require.Contains(t, body, "dl-roles", "every token reads the dead letters")
			require.Equal(t, tc.requeue, strings.Contains(body, `value="requeue"`), "requeue button")
			require.Equal(t, tc.purge, strings.Contains(body, `value="purge"`), "purge button")
			require.Equal(t, tc.auditAllowed, strings.Contains(body, `href="/ui/audit"`), "audit link")
			if !tc.cancel {
				require.NotContains(t, body, `method="post" action="/ui/dlq"`, "no action form at all")
			}
			resp, _ := get(t, c, srv.URL+"/ui/audit")
			require.Equal(t, tc.auditAllowed, resp.StatusCode == http.StatusOK, "audit page: %d", resp.StatusCode)
			if !tc.purge {
				// A forged purge is refused and changes nothing.
				resp, body := post(t, c, srv.URL+"/ui/dlq", url.Values{"csrf": {csrf}, "action": {"purge"}, "scope": {"selected"}, "id": {dead}, "confirm": {"yes"}}, nil)
				require.Equal(t, http.StatusForbidden, resp.StatusCode)
				require.Contains(t, body, "needs role admin")
				require.EqualValues(t, 1, deadCount(t, env))
			}
			if !tc.cancel {
				resp, body := post(t, c, batchURL+"/cancel", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, nil)
				require.Equal(t, http.StatusForbidden, resp.StatusCode)
				require.Contains(t, body, "needs role operate")
				b, err := env.Inspector.Batch(context.Background(), info.BatchID)
				require.NoError(t, err)
				require.Zero(t, b.Counts[tasks.StateCanceled])
			}
		})
	}

	// A token limited to another server may not touch this one's.
	c := client(t)
	_, csrf := signIn(t, c, srv.URL, scopedToken, nil)
	_, body := get(t, c, batchURL)
	require.Contains(t, body, "Cancel the batch", "the role allows it; the scope is checked on the action")
	resp, body := post(t, c, batchURL+"/cancel", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, body, "may touch only the servers eu")
	resp, body = post(t, c, srv.URL+"/ui/dlq", url.Values{"csrf": {csrf}, "action": {"purge"}, "scope": {"all"}, "confirm": {"yes"}}, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, body, "choose one in the filter")
	resp, _ = post(t, c, srv.URL+"/ui/dlq", url.Values{"csrf": {csrf}, "action": {"requeue"}, "scope": {"selected"}, "id": {dead}, "confirm": {"yes"}}, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.EqualValues(t, 1, deadCount(t, env))

	// The admin cancels the batch: one entry, with the counts.
	admin := client(t)
	_, csrf = signIn(t, admin, srv.URL, token, nil)
	resp, _ = post(t, admin, batchURL+"/cancel", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	p, err := log.List(context.Background(), audit.Query{})
	require.NoError(t, err)
	var got []string
	for _, e := range p.Entries {
		require.Equal(t, audit.ViaConsole, e.Via)
		got = append(got, e.Actor+" "+e.Action+" "+e.Outcome)
	}
	require.Equal(t, []string{
		"env-" + access.Hash(token)[:8] + " batch.cancel ok",
		"eu-admin dlq.requeue refused",
		"eu-admin dlq.purge refused",
		"eu-admin batch.cancel refused",
		"oncall dlq.purge refused",
		"viewer batch.cancel refused",
		"viewer dlq.purge refused",
	}, got)
	require.Equal(t, map[string]int64{"canceled": 3, "already_started": 0, "already_final": 0}, p.Entries[0].Result)
	for _, tok := range []string{token, readToken, operateToken, scopedToken} {
		require.NotContains(t, fmt.Sprint(p.Entries), tok)
	}

	// The audit page says how far back the log goes.
	_, body = get(t, admin, srv.URL+"/ui/audit")
	require.Contains(t, body, "Kept for 90 days, at most 1000000 entries")
	require.Contains(t, body, "It holds 7 entries, the oldest from")
	_, body = get(t, admin, srv.URL+"/ui/audit?actor=viewer")
	require.Equal(t, 2, strings.Count(body, "<td>viewer"))
}

// TestBrowserReadOnly: in Chromium, a read-only token sees no button that
// changes anything, on any page.
func TestBrowserReadOnly(t *testing.T) {
	env := wahaqtest.Start(t, wahaqtest.Options{})
	deadLetter(t, env, "ro-dead")
	names := env.Fake.AddSessions("ro", 3, wahafake.StatusWorking)
	info, err := env.Producer.EnqueueBatch(context.Background(), tasks.BatchRequest{Sessions: names, When: tasks.When{In: time.Hour}})
	require.NoError(t, err)
	var log *audit.Log
	srv := serve(t, env, withRoles(env, &log))
	ctx := browser(t)
	run(t, ctx,
		chromedp.Navigate(srv.URL+"/ui/signin?next=%2Fui%2Fdlq"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), readToken),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("#dlq-count")),
	)
	require.Equal(t, "viewer · read", text(ctx, t, ".who"))
	for _, p := range []string{"/ui/", "/ui/batches", "/ui/batches/" + info.BatchID, "/ui/dlq", "/ui/tasks"} {
		run(t, ctx, chromedp.Navigate(srv.URL+p), chromedp.WaitVisible(chromedp.CSS("h1")))
		if p == "/ui/dlq" {
			require.NoError(t, chromedp.Do(ctx, shot("dlq-read-only")))
		}
		if p == "/ui/batches/"+info.BatchID {
			require.NoError(t, chromedp.Do(ctx, shot("batch-read-only")))
		}
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('main form[method="post"], main button.danger, main button[name="action"]').length`))
		require.NoError(t, err)
		require.Zero(t, n, "%s shows an action to a read-only token", p)
		audits, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('a[href="/ui/audit"]').length`))
		require.NoError(t, err)
		require.Zero(t, audits, "%s links the audit log", p)
	}
	require.Contains(t, text(ctx, t, "h1"), "Find a task")

	// An admin sees the buttons, cancels the batch, and reads it in the
	// audit log, which says how far back it goes.
	run(t, ctx,
		chromedp.Navigate(srv.URL+"/ui/"),
		chromedp.Click(chromedp.CSS(`.signout button`)),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.Navigate(srv.URL+"/ui/signin?next=%2Fui%2Fdlq"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("#dlq-count")),
		chromedp.Navigate(srv.URL+"/ui/batches/"+info.BatchID),
		chromedp.Click(chromedp.CSS(`form[action$="/cancel"] button`)),
		chromedp.WaitReady(chromedp.CSS(`input[name="confirm"]`)),
		chromedp.Click(chromedp.CSS(`form[action$="/cancel"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[role="status"]`)),
		chromedp.Navigate(srv.URL+"/ui/audit"),
		chromedp.WaitVisible(chromedp.CSS("#audit-retention")),
		shot("audit"),
	)
	require.Contains(t, text(ctx, t, "#audit-retention"), "Kept for 90 days")
	require.Contains(t, text(ctx, t, "main table"), "batch.cancel")
}

// TestEndAllSessionsNeedsAdmin: ending every console session (issue 23,
// M2) is an admin's action: an operate token sees no button and its forged
// form is refused, ends nothing and is in the audit log.
func TestEndAllSessionsNeedsAdmin(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	var log *audit.Log
	srv := serve(t, env, withRoles(env, &log))
	admin, oncall := client(t), client(t)
	_, _ = signIn(t, admin, srv.URL, token, nil)
	resp, csrf := signIn(t, oncall, srv.URL, operateToken, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	_, body := get(t, oncall, srv.URL+"/ui/")
	require.NotContains(t, body, "/ui/sessions/end", "no button for an operate token")

	resp, _ = post(t, oncall, srv.URL+"/ui/sessions/end", url.Values{"csrf": {csrf}}, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = get(t, admin, srv.URL+"/ui/")
	require.Equal(t, http.StatusOK, resp.StatusCode, "the admin's session still works")
	page, err := log.List(context.Background(), audit.Query{})
	require.NoError(t, err)
	require.NotEmpty(t, page.Entries)
	require.Equal(t, "console.sessions.end", page.Entries[0].Action)
	require.Equal(t, audit.OutcomeRefused, page.Entries[0].Outcome)
}
