package console_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/api"
	"github.com/wahaq/wahaq/internal/console"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

const token = "console-test-token"

// key is a fixed signing key, so tests can build two consoles that accept
// each other's cookies.
var key = []byte("0123456789abcdef0123456789abcdef")

// serve mounts a console the way `wahaq serve` does.
func serve(t *testing.T, env *wahaqtest.Env, adjust func(*console.Config)) *httptest.Server {
	t.Helper()
	cfg := console.Config{Inspector: env.Inspector, Producer: env.Producer, Redis: env.Redis, Namespace: env.Namespace,
		Servers: []console.Server{{Name: env.Instance, Cap: 4, Rate: 50}}, Tokens: []string{token}, Key: key}
	if adjust != nil {
		adjust(&cfg)
	}
	c, err := console.New(cfg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/ui/", c)
	mux.Handle("/", http.NotFoundHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// client is a browser-like client: a cookie jar, no redirects followed.
func client(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

var (
	preRE  = regexp.MustCompile(`name="pre" value="([0-9a-f]+)"`)
	csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)
)

// signIn signs c in with tok and returns the session's CSRF token.
func signIn(t *testing.T, c *http.Client, base, tok string, header http.Header) (*http.Response, string) {
	t.Helper()
	_, body := get(t, c, base+"/ui/signin")
	m := preRE.FindStringSubmatch(body)
	require.NotNil(t, m, "the sign-in form carries a pre value")
	resp, _ := post(t, c, base+"/ui/signin", url.Values{"pre": {m[1]}, "token": {tok}, "next": {"/ui/dlq"}}, header)
	if resp.StatusCode != http.StatusSeeOther {
		return resp, ""
	}
	_, body = get(t, c, base+"/ui/")
	m = csrfRE.FindStringSubmatch(body)
	require.NotNil(t, m, "a signed-in page carries the CSRF token")
	return resp, m[1]
}

// deadLetter makes one auth_failed dead letter and returns its id.
func deadLetter(t *testing.T, env *wahaqtest.Env, session string) string {
	t.Helper()
	env.Fake.AddSession(session, wahafake.StatusWorking)
	env.Fake.Script(session, wahafake.Fault{Status: http.StatusUnauthorized, Times: 1})
	task, err := env.Producer.Enqueue(context.Background(), tasks.LogoutRequest{Session: session})
	require.NoError(t, err)
	env.WaitTask(t, task.ID, 15*time.Second)
	return task.ID
}

func deadCount(t *testing.T, env *wahaqtest.Env) int64 {
	p, err := env.Inspector.DeadLetters(context.Background(), "", 0, 0)
	require.NoError(t, err)
	return p.Total
}

func TestRefusedWithoutSession(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	id := deadLetter(t, env, "nosession")
	srv := serve(t, env, nil)
	c := client(t)

	for _, p := range []string{"/ui/", "/ui/batches", "/ui/dlq", "/ui/tasks/" + id} {
		resp, _ := get(t, c, srv.URL+p)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, p)
		require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/ui/signin?next="), p)
	}
	resp, _ := get(t, c, srv.URL+"/ui/live/overview")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	resp, body := post(t, c, srv.URL+"/ui/dlq", url.Values{"action": {"purge"}, "id": {id}, "confirm": {"yes"}, "csrf": {"00"}}, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, body, "nothing was changed")
	require.EqualValues(t, 1, deadCount(t, env), "the dead letter is still there")

	// A cookie signed with another key is no session either.
	other := serve(t, env, func(cfg *console.Config) { cfg.Key = []byte("another key, another key, another key") })
	_, csrf := signIn(t, c, other.URL, token, nil)
	forged := client(t)
	u, _ := url.Parse(srv.URL)
	ou, _ := url.Parse(other.URL)
	forged.Jar.SetCookies(u, c.Jar.Cookies(ou))
	resp, _ = post(t, forged, srv.URL+"/ui/dlq", url.Values{"action": {"purge"}, "id": {id}, "confirm": {"yes"}, "csrf": {csrf}}, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.EqualValues(t, 1, deadCount(t, env))
}

func TestSignInAndCSRF(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	id := deadLetter(t, env, "csrf")
	srv := serve(t, env, nil)

	t.Run("wrong token", func(t *testing.T) {
		c := client(t)
		resp, _ := signIn(t, c, srv.URL, "not-the-token", nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		u, _ := url.Parse(srv.URL + "/ui/")
		for _, ck := range c.Jar.Cookies(u) {
			require.NotEqual(t, "wahaq_console", ck.Name, "no session for a wrong token")
		}
	})
	t.Run("sign-in form not from the console", func(t *testing.T) {
		resp, _ := post(t, client(t), srv.URL+"/ui/signin", url.Values{"pre": {"abcd"}, "token": {token}}, nil)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
	})
	t.Run("cookie attributes", func(t *testing.T) {
		for _, https := range []bool{false, true} {
			h := http.Header{}
			if https {
				h.Set("X-Forwarded-Proto", "https")
			}
			resp, _ := signIn(t, client(t), srv.URL, token, h)
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
			require.Equal(t, "/ui/dlq", resp.Header.Get("Location"), "back to the page asked for")
			var sc *http.Cookie
			for _, ck := range resp.Cookies() {
				if ck.Name == "wahaq_console" {
					sc = ck
				}
			}
			require.NotNil(t, sc)
			require.True(t, sc.HttpOnly)
			require.Equal(t, http.SameSiteStrictMode, sc.SameSite)
			require.Equal(t, "/ui/", sc.Path)
			require.Equal(t, https, sc.Secure, "Secure exactly behind TLS")
			require.Equal(t, int((12 * time.Hour).Seconds()), sc.MaxAge)
			require.NotContains(t, sc.Value, token)
		}
	})
	t.Run("forged CSRF token", func(t *testing.T) {
		c := client(t)
		_, csrf := signIn(t, c, srv.URL, token, nil)
		for _, bad := range []string{"", strings.Repeat("0", len(csrf)), csrf + "0"} {
			resp, body := post(t, c, srv.URL+"/ui/dlq", url.Values{"action": {"purge"}, "id": {id}, "confirm": {"yes"}, "csrf": {bad}}, nil)
			require.Equal(t, http.StatusForbidden, resp.StatusCode, "csrf %q", bad)
			require.Contains(t, body, "nothing was changed")
		}
		require.EqualValues(t, 1, deadCount(t, env), "a forged token purges nothing")
		resp, body := post(t, c, srv.URL+"/ui/dlq", url.Values{"action": {"purge"}, "id": {id}, "csrf": {csrf}}, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, body, "Purge 1 dead letter?", "the confirmation names how many")
		require.EqualValues(t, 1, deadCount(t, env), "nothing before the confirmation")
	})
	t.Run("expired and revoked sessions", func(t *testing.T) {
		c := client(t)
		_, _ = signIn(t, c, srv.URL, token, nil)
		resp, _ := get(t, c, srv.URL+"/ui/")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		later := serve(t, env, func(cfg *console.Config) { cfg.Now = func() time.Time { return time.Now().Add(13 * time.Hour) } })
		revoked := serve(t, env, func(cfg *console.Config) { cfg.Tokens = []string{"a-new-token"} })
		for _, s := range []*httptest.Server{later, revoked} {
			moved := client(t)
			u, _ := url.Parse(s.URL)
			su, _ := url.Parse(srv.URL + "/ui/")
			moved.Jar.SetCookies(&url.URL{Scheme: "http", Host: u.Host, Path: "/ui/"}, c.Jar.Cookies(su))
			resp, _ := get(t, moved, s.URL+"/ui/")
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		}
	})
	t.Run("sign-out", func(t *testing.T) {
		c := client(t)
		_, csrf := signIn(t, c, srv.URL, token, nil)
		copied := copyCookies(t, c, srv.URL)
		resp, _ := post(t, c, srv.URL+"/ui/signout", url.Values{"csrf": {csrf}}, nil)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		resp, _ = get(t, c, srv.URL+"/ui/")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, "signed out")
		// Issue 23, M2: a cookie copied before sign-out read /ui/dlq and
		// its CSRF value still posted. The session is over server-side.
		requireSessionEnded(t, env, srv.URL, copied, csrf, id)
	})
	t.Run("end all sessions", func(t *testing.T) {
		a, b := client(t), client(t)
		csrfA := func() string { _, c := signIn(t, a, srv.URL, token, nil); return c }()
		_, csrfB := signIn(t, b, srv.URL, token, nil)
		copiedA, copiedB := copyCookies(t, a, srv.URL), copyCookies(t, b, srv.URL)
		resp, _ := post(t, b, srv.URL+"/ui/sessions/end", url.Values{"csrf": {"forged"}}, nil)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, "a forged CSRF value ends nothing")
		resp, _ = get(t, a, srv.URL+"/ui/dlq")
		require.Equal(t, http.StatusOK, resp.StatusCode)

		resp, _ = post(t, b, srv.URL+"/ui/sessions/end", url.Values{"csrf": {csrfB}}, nil)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/ui/signin?ended="), resp.Header.Get("Location"))
		requireSessionEnded(t, env, srv.URL, copiedA, csrfA, id)
		requireSessionEnded(t, env, srv.URL, copiedB, csrfB, id)
		_, csrf := signIn(t, a, srv.URL, token, nil)
		require.NotEmpty(t, csrf, "signing in again works")
	})
}

// copyCookies is a fresh client holding c's cookies for base: a cookie
// copied out of a browser.
func copyCookies(t *testing.T, c *http.Client, base string) *http.Client {
	t.Helper()
	u, _ := url.Parse(base + "/ui/")
	cp := client(t)
	cp.Jar.SetCookies(u, c.Jar.Cookies(u))
	require.NotEmpty(t, cp.Jar.Cookies(u))
	return cp
}

// requireSessionEnded checks that c's session reads nothing and changes
// nothing, with the session's own CSRF value.
func requireSessionEnded(t *testing.T, env *wahaqtest.Env, base string, c *http.Client, csrf, deadID string) {
	t.Helper()
	resp, _ := get(t, c, base+"/ui/dlq")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "an ended session reads /ui/dlq")
	resp, _ = get(t, c, base+"/ui/live/overview")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	before := deadCount(t, env)
	resp, _ = post(t, c, base+"/ui/dlq", url.Values{"action": {"purge"}, "id": {deadID}, "confirm": {"yes"}, "csrf": {csrf}}, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "an ended session posts")
	require.Equal(t, before, deadCount(t, env))
}

func TestPagesRender(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{NoStart: true})
	env.Fake.AddSessions("r", 3, wahafake.StatusWorking)
	info, err := env.Producer.EnqueueBatch(context.Background(), tasks.BatchRequest{Sessions: []string{"r0001", "r0002", "r0003"}})
	require.NoError(t, err)
	srv := serve(t, env, nil)
	c := client(t)
	_, _ = signIn(t, c, srv.URL, token, nil)
	_, body := get(t, c, srv.URL+"/ui/batches")
	require.Contains(t, body, info.BatchID, "a batch with queued tasks is listed")
	require.NoError(t, env.Worker.Start())
	env.WaitBatch(t, info.BatchID, 15*time.Second)
	id := deadLetter(t, env, "render")
	for p, want := range map[string]string{
		"/ui/":                                 "Tasks by state",
		"/ui/batches":                          info.BatchID,
		"/ui/batches/" + info.BatchID:          "By outcome",
		"/ui/dlq":                              "Matching the filter: <strong>1</strong>",
		"/ui/dlq?outcome=auth_failed":          "render",
		"/ui/tasks/" + id:                      "auth_failed",
		"/ui/tasks?session=render":             id,
		"/ui/live/overview":                    `"f":`,
		"/ui/live/batches/" + info.BatchID:     `"done":true`,
		"/ui/static/style.css":                 "focus-visible",
		"/ui/static/":                          "404 page not found",
		"/ui/dlq?outcome=logged_out":           "not a dead-letter outcome",
		"/ui/batches/not-a-batch":              "no batch",
		"/ui/tasks/00000000-0000-0000-0000-00": "no task",
	} {
		resp, body := get(t, c, srv.URL+p)
		require.Contains(t, body, want, p)
		require.NotEqual(t, http.StatusInternalServerError, resp.StatusCode, p)
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'", p)
	}
}

func TestOpenMode(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	id := deadLetter(t, env, "open")
	srv := serve(t, env, func(cfg *console.Config) { cfg.Tokens = nil; cfg.InsecureNoAuth = true })
	c := client(t)
	resp, body := get(t, c, srv.URL+"/ui/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "No authentication")
	resp, _ = post(t, c, srv.URL+"/ui/dlq", url.Values{"action": {"purge"}, "id": {id}, "confirm": {"yes"}}, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "still no change without the CSRF token")
	require.EqualValues(t, 1, deadCount(t, env))
}

func TestConfigRefused(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{NoStart: true})
	base := console.Config{Inspector: env.Inspector, Producer: env.Producer, Redis: env.Redis}
	for name, adjust := range map[string]func(*console.Config){
		"no tokens":    func(*console.Config) {},
		"short key":    func(c *console.Config) { c.Tokens = []string{"t"}; c.Key = []byte("short") },
		"no inspector": func(c *console.Config) { c.Tokens = []string{"t"}; c.Inspector = nil },
	} {
		cfg := base
		adjust(&cfg)
		_, err := console.New(cfg)
		require.Error(t, err, name)
	}
}

func TestCancelBatch(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{NoStart: true})
	names := env.Fake.AddSessions("c", 5, wahafake.StatusWorking)
	info, err := env.Producer.EnqueueBatch(context.Background(), tasks.BatchRequest{Sessions: names})
	require.NoError(t, err)
	srv := serve(t, env, nil)
	c := client(t)
	_, csrf := signIn(t, c, srv.URL, token, nil)
	action := srv.URL + "/ui/batches/" + info.BatchID + "/cancel"

	resp, _ := post(t, c, action, url.Values{"csrf": {"forged"}, "confirm": {"yes"}}, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, body := post(t, c, action, url.Values{"csrf": {csrf}}, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "Cancel 5 tasks", "the confirmation names how many")
	b, err := env.Inspector.Batch(context.Background(), info.BatchID)
	require.NoError(t, err)
	require.Zero(t, b.Counts[tasks.StateCanceled], "nothing canceled before the confirmation")

	resp, body = post(t, c, action, url.Values{"csrf": {csrf}, "confirm": {"yes"}}, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "Canceled 5 tasks of batch "+info.BatchID+"; 0 had already started.")
	b, err = env.Inspector.Batch(context.Background(), info.BatchID)
	require.NoError(t, err)
	require.EqualValues(t, 5, b.Counts[tasks.StateCanceled])
	require.True(t, b.Done)
	require.NoError(t, env.Worker.Start())
	require.Zero(t, env.Fake.TotalLogoutCalls(), "no canceled logout reaches WAHA")
}

func TestDeadLetterActions(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	deadLetter(t, env, "dl-a")
	deadLetter(t, env, "dl-b")
	srv := serve(t, env, nil)
	c := client(t)
	_, csrf := signIn(t, c, srv.URL, token, nil)

	for _, bad := range []url.Values{
		{"action": {"purge"}, "scope": {"all"}, "outcome": {"logged_out"}},
		{"action": {"purge"}, "scope": {"all"}, "instance": {"nowhere"}},
		{"action": {"explode"}, "scope": {"all"}},
		{"action": {"purge"}, "scope": {"selected"}},
	} {
		bad.Set("csrf", csrf)
		bad.Set("confirm", "yes")
		resp, _ := post(t, c, srv.URL+"/ui/dlq", bad, nil)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%v", bad)
	}
	require.EqualValues(t, 2, deadCount(t, env), "bad requests purge nothing")

	// Another outcome's filter matches none.
	form := url.Values{"csrf": {csrf}, "action": {"purge"}, "scope": {"all"}, "outcome": {"rejected"}}
	_, body := post(t, c, srv.URL+"/ui/dlq", form, nil)
	require.Contains(t, body, "Purge 0 dead letters?")

	form.Set("outcome", "auth_failed")
	_, body = post(t, c, srv.URL+"/ui/dlq", form, nil)
	require.Contains(t, body, "Purge 2 dead letters?")
	form.Set("confirm", "yes")
	_, body = post(t, c, srv.URL+"/ui/dlq", form, nil)
	require.Contains(t, body, "Purged 2 dead letters.")
	require.Zero(t, deadCount(t, env))
}

// TestBatchesListsEveryBatch: the Batches page lists batches the console
// never saw live: one made and finished before the console started (as
// `wahaq bulk` or n8n would), and a discovery batch, whose only task is the
// discovery itself. Both come from tasks.Inspector.RecentBatches.
func TestBatchesListsEveryBatch(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	env.Fake.AddSessions("l", 2, wahafake.StatusWorking)
	ctx := context.Background()
	done, err := env.Producer.EnqueueBatch(ctx, tasks.BatchRequest{Sessions: []string{"l0001", "l0002"}})
	require.NoError(t, err)
	env.WaitBatch(t, done.BatchID, 15*time.Second)
	later, err := env.Producer.EnqueueDiscovery(ctx, tasks.DiscoveryRequest{When: tasks.When{In: time.Hour}})
	require.NoError(t, err)

	srv := serve(t, env, nil)
	c := client(t)
	_, _ = signIn(t, c, srv.URL, token, nil)
	_, body := get(t, c, srv.URL+"/ui/batches")
	first, second := strings.Index(body, later.BatchID), strings.Index(body, done.BatchID)
	require.NotEqual(t, -1, first, "the discovery batch is listed")
	require.NotEqual(t, -1, second, "the batch finished before the console started is listed")
	require.Less(t, first, second, "newest first")
	_, body = get(t, c, srv.URL+"/ui/live/batches")
	require.Contains(t, body, done.BatchID+".final")
}

// A discovery batch's page shows the listing entries it skipped, per reason.
func TestBatchPageShowsSkipped(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	env.Fake.InjectListEntries(wahafake.BadListEntries...)
	info, err := env.Producer.EnqueueDiscovery(context.Background(), tasks.DiscoveryRequest{})
	require.NoError(t, err)
	b := env.WaitBatch(t, info.BatchID, 15*time.Second)
	require.EqualValues(t, 2, b.Skipped["bad_name"])
	srv := serve(t, env, nil)
	c := client(t)
	_, _ = signIn(t, c, srv.URL, token, nil)
	_, body := get(t, c, srv.URL+"/ui/batches/"+info.BatchID)
	require.Contains(t, body, "<dt>Skipped: bad_name</dt><dd>2</dd>")
	require.Contains(t, body, "<dt>Skipped: not_object</dt><dd>2</dd>")
	require.Contains(t, body, "<dt>Skipped: bad_status</dt><dd>1</dd>")
}

// TestOverviewShowsCircuit: the overview shows the circuit state the
// workers report in Redis (no Config.Circuit, as `wahaq serve` builds it):
// open while the server answers 503, closed once it recovers.
func TestOverviewShowsCircuit(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{Worker: func(cfg *worker.Config) {
		cfg.InstanceConcurrency = 1
		cfg.RetryBase, cfg.RetryMax = 100*time.Millisecond, 200*time.Millisecond
	}})
	srv := serve(t, env, nil)
	c := client(t)
	_, _ = signIn(t, c, srv.URL, token, nil)
	pill := `data-f="` + env.Instance + `.circuit">`
	_, body := get(t, c, srv.URL+"/ui/")
	require.Contains(t, body, pill+"closed<", "no worker reports: closed")

	env.Fake.SetDefaultFault(&wahafake.Fault{Status: http.StatusServiceUnavailable})
	names := env.Fake.AddSessions("oc", 8, wahafake.StatusWorking)
	info, err := env.Producer.EnqueueBatch(context.Background(), tasks.BatchRequest{Sessions: names})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, body = get(t, c, srv.URL+"/ui/")
		return strings.Contains(body, pill+"open<")
	}, 20*time.Second, 20*time.Millisecond, "the overview shows the breaker open")
	require.Contains(t, body, `data-f="`+env.Instance+`.circuitn">on 1 worker<`)
	_, live := get(t, c, srv.URL+"/ui/live/overview")
	require.Contains(t, live, `"`+env.Instance+`.circuit":`)

	env.Fake.SetDefaultFault(nil)
	env.WaitBatch(t, info.BatchID, 30*time.Second)
	require.Eventually(t, func() bool {
		_, body = get(t, c, srv.URL+"/ui/live/overview")
		return strings.Contains(body, `"`+env.Instance+`.circuit":"closed"`)
	}, 5*time.Second, 20*time.Millisecond, "closed after recovery")
}

// TestTaskPageShowsConfirmation: a logout confirmed by WAHA's
// session.status event shows the event; one not confirmed says so.
func TestTaskPageShowsConfirmation(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{NoStart: true, Worker: func(c *worker.Config) { c.Instances[0].AwaitEvents = true }})
	env.Fake.AddSession("bot", wahafake.StatusWorking)
	confirmed := env.Work(t, tasks.LogoutRequest{Session: "bot"})
	plain := env.Work(t, tasks.LogoutRequest{Session: "default"})
	res, err := env.Inspector.RecordEvent(context.Background(), env.Instance,
		tasks.SessionEvent{ID: "evt_console", Session: "bot", Status: "SCAN_QR_CODE", At: time.Now()})
	require.NoError(t, err)
	require.Equal(t, tasks.EventResult{TaskID: confirmed.ID, Confirmed: true}, res)
	srv := serve(t, env, nil)
	c := client(t)
	_, _ = signIn(t, c, srv.URL, token, nil)
	_, body := get(t, c, srv.URL+"/ui/tasks/"+confirmed.ID)
	require.Contains(t, body, "<strong>SCAN_QR_CODE</strong> at")
	_, body = get(t, c, srv.URL+"/ui/tasks/"+plain.ID)
	require.Contains(t, body, "Not confirmed")
}

// TestSignInNextStaysInConsole is issue 23's M1: next=/ui/../%5Cevil.example
// led, after sign-in, to /\evil.example, which browsers read as
// http://evil.example/. Whatever next says, sign-in leads to a path of the
// console on the same host, and so does the sign-in form's hidden field.
func TestSignInNextStaysInConsole(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	srv := serve(t, env, nil)
	for _, tc := range []struct{ next, want string }{
		{"/ui/../%5Cevil.example", "/ui/"},
		{"/ui/../\\evil.example", "/ui/"},
		{"/ui/..\\..\\evil.example", "/ui/"},
		{"/ui/%5c%5cevil.example", "/ui/"},
		{"/ui/../../evil.example", "/ui/"},
		{"/ui/..%2F..%2F%2Fevil.example", "/ui/"},
		{"/ui/%2e%2e/%2e%2e//evil.example", "/ui/"},
		{"//evil.example/ui/", "/ui/"},
		{"/ui//../..//evil.example", "/ui/"},
		{"https://evil.example/ui/", "/ui/"},
		{"/ui/\t/evil.example", "/ui/"},
		{"javascript:alert(1)//ui/", "/ui/"},
		{"/ui", "/ui/"},
		{"/ui/./dlq", "/ui/dlq"},
		{"/ui/batches/../dlq?page=2", "/ui/dlq?page=2"},
		{"/ui/tasks/abc", "/ui/tasks/abc"},
	} {
		t.Run(tc.next, func(t *testing.T) {
			c := client(t)
			_, body := get(t, c, srv.URL+"/ui/signin?next="+url.QueryEscape(tc.next))
			m := preRE.FindStringSubmatch(body)
			require.NotNil(t, m)
			field := regexp.MustCompile(`name="next" value="([^"]*)"`).FindStringSubmatch(body)
			require.NotNil(t, field, "the form carries next")
			require.Equal(t, tc.want, html.UnescapeString(field[1]), "the form's next")

			resp, _ := post(t, c, srv.URL+"/ui/signin", url.Values{"pre": {m[1]}, "token": {token}, "next": {tc.next}}, nil)
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
			loc := resp.Header.Get("Location")
			require.Equal(t, tc.want, loc)
			require.NotContains(t, strings.ToLower(loc), `%5c`)
			require.NotContains(t, loc, `\`)
		})
	}
}

// TestSignInWrongTokensLimited is issue 23's M3 at /ui/signin: 300 wrong
// tokens in 1.1 s were each a 401. After api.DefaultAttemptBurst wrong
// tokens from one address, sign-in answers 429 with Retry-After, the right
// token included, and opens no session.
func TestSignInWrongTokensLimited(t *testing.T) {
	t.Parallel()
	env := wahaqtest.Start(t, wahaqtest.Options{})
	srv := serve(t, env, nil)
	c := client(t)
	for i := range api.DefaultAttemptBurst {
		resp, _ := signIn(t, c, srv.URL, "guess-"+strconv.Itoa(i), nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "attempt %d", i)
	}
	for _, tok := range []string{"guess-x", token} {
		resp, _ := signIn(t, c, srv.URL, tok, nil)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, tok)
		require.NotEmpty(t, resp.Header.Get("Retry-After"))
		for _, ck := range resp.Cookies() {
			require.NotEqual(t, "wahaq_console", ck.Name, "no session while limited")
		}
	}
}
