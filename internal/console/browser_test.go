package console_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/console"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
	"github.com/wahaq/wahaq/worker"
)

// screenshotDir is where WAHAQ_UPDATE_SCREENSHOTS=1 writes the pictures
// docs/console.md shows.
const screenshotDir = "../../docs/console"

// chromium finds the browser: $WAHAQ_CHROMIUM, or chromium on the PATH
// (scripts/test installs Debian's package when it is missing).
func chromium(t *testing.T) string {
	if p := os.Getenv("WAHAQ_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: install Debian's chromium package (scripts/test does) or set WAHAQ_CHROMIUM")
	return ""
}

// browser starts a headless Chromium with a fresh profile and returns a tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	require.NoError(t, chromedp.Do(ctx), "start Chromium")
	// Later steps get a deadline; the first call's context must have none,
	// or the deadline would end the browser itself.
	tctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel)
	return tctx
}

// shot saves a full-page screenshot when WAHAQ_UPDATE_SCREENSHOTS=1.
func shot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if os.Getenv("WAHAQ_UPDATE_SCREENSHOTS") != "1" {
			return nil
		}
		b, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(screenshotDir, name+".png"), b, 0o644)
	})
}

// phone narrows the viewport to a phone's, or back to a laptop's.
func phone(on bool) chromedp.Action[chromedp.Void] {
	if on {
		return chromedp.EmulateViewport(390, 844)
	}
	return chromedp.EmulateViewport(1280, 900)
}

// until waits for a JavaScript condition to hold in the page. It checks
// every 50 ms and rides over the page's own reloads (an evaluation during a
// navigation fails and is simply tried again).
func until(expr string, timeout time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		deadline := time.Now().Add(timeout)
		for {
			ok, err := chromedp.Evaluate[bool]("(() => { try { return !!("+expr+"); } catch (e) { return false; } })()")(ctx, tg)
			if err == nil && ok {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("still false after %s: %s (last error: %v)", timeout, expr, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

// run runs browser steps, each batch within 30 seconds.
func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, steps...))
}

func location(ctx context.Context, t *testing.T) string {
	t.Helper()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	return loc
}

func text(ctx context.Context, t *testing.T, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(t, err, sel)
	return strings.TrimSpace(s)
}

// TestBrowser drives the console in a real headless Chromium against a real
// Redis, a real worker and a fake WAHA with latency: sign in, watch a batch
// reach done, requeue a dead letter and see it complete, be refused without
// a session and on a forged CSRF token, sign out.
func TestBrowser(t *testing.T) {
	env := wahaqtest.Start(t, wahaqtest.Options{
		Fake: wahafake.Options{LogoutLatency: 150 * time.Millisecond},
		// Two logouts at a time, so a 40-session batch takes at least three
		// seconds: long enough to watch, short enough for the suite.
		Worker:  func(cfg *worker.Config) { cfg.InstanceConcurrency = 2 },
		NoStart: true,
	})
	sessions := env.Fake.AddSessions("shop", 40, wahafake.StatusWorking)
	env.Fake.Script(sessions[3], wahafake.Fault{Status: http.StatusUnauthorized, Times: 1})
	info, err := env.Producer.EnqueueBatch(context.Background(), tasks.BatchRequest{Sessions: sessions})
	require.NoError(t, err)
	srv := serve(t, env, func(cfg *console.Config) { cfg.Refresh = time.Second })
	ctx := browser(t)
	u := srv.URL

	// Without a session every page leads to the sign-in form.
	run(t, ctx,
		chromedp.Navigate(u+"/ui/dlq"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		shot("signin"),
	)
	loc := location(ctx, t)
	require.Contains(t, loc, "/ui/signin")

	// A wrong token is refused; the right one opens the page asked for.
	run(t, ctx,
		chromedp.SendKeys(chromedp.CSS("#token"), "wrong-token"),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS(".error")),
	)
	require.Contains(t, text(ctx, t, ".error"), "not valid")
	// Keyboard only: the token field has the focus, Enter submits.
	run(t, ctx, chromedp.Navigate(u+"/ui/signin?next=%2Fui%2Fdlq"), chromedp.WaitVisible(chromedp.CSS("#token")))
	focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`))
	require.NoError(t, err)
	require.Equal(t, "token", focused, "the token field has the focus")
	run(t, ctx,
		chromedp.Focus(chromedp.CSS("#token")),
		chromedp.KeyEvent(token+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#dlq-count")),
	)
	loc = location(ctx, t)
	require.True(t, strings.HasSuffix(loc, "/ui/dlq"), "back to the page asked for: %s", loc)
	run(t, ctx, chromedp.KeyEvent(kb.Tab))
	focused, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.className`))
	require.NoError(t, err)
	require.Equal(t, "skip", focused, "the first Tab reaches the skip link")

	// The queued batch is listed; then the worker starts and the batch page
	// follows it live (no navigation by the test) until it reads done.
	run(t, ctx,
		chromedp.Navigate(u+"/ui/batches"),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/ui/batches/`+info.BatchID+`"]`)),
		chromedp.Navigate(u+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(".card")),
	)
	require.Equal(t, "40", text(ctx, t, `[data-f="default.pending"]`))
	require.NoError(t, env.Worker.Start())
	run(t, ctx,
		chromedp.Navigate(u+"/ui/batches/"+info.BatchID),
		chromedp.WaitVisible(chromedp.CSS(`[data-f="status"]`)),
	)
	require.NotEqual(t, "done", text(ctx, t, `[data-f="status"]`), "the batch is still running when the page opens")
	run(t, ctx,
		until(`document.querySelector('[data-f="final"]').textContent !== "0"`, 20*time.Second),
		shot("batch-running"),
		until(`document.querySelector('[data-f="status"]').textContent === "done"`, 30*time.Second),
		chromedp.WaitVisible(chromedp.CSS(`a[href^="/ui/tasks/"]`)),
	)
	value, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`progress[data-p="batch"]`), "value"))
	require.NoError(t, err)
	require.Equal(t, "100", value.Value)
	require.Equal(t, "39", text(ctx, t, `[data-f="o.logged_out"]`))
	require.Equal(t, "1", text(ctx, t, `[data-f="o.auth_failed"]`))
	require.NoError(t, chromedp.Do(ctx, shot("batch-done")))

	// asynq archives the dead letter a moment after wahaq records it; only
	// then can it be requeued.
	dead := deadLetterID(t, env)
	aq := asynq.NewInspectorFromRedisClient(env.Redis)
	require.Eventually(t, func() bool {
		ti, err := aq.GetTaskInfo(env.Namespace+":"+env.Instance, dead)
		return err == nil && ti.State == asynq.TaskStateArchived
	}, 10*time.Second, 20*time.Millisecond)

	run(t, ctx,
		chromedp.Navigate(u+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(".card")),
		shot("overview"),
	)
	require.Equal(t, "1", text(ctx, t, `[data-f="default.dead"]`), "the overview counts the dead letter")
	run(t, ctx,
		chromedp.Navigate(u+"/ui/batches"),
		chromedp.WaitVisible(chromedp.CSS("progress")),
		shot("batches"),
	)

	// The dead letter is found by its session name.
	run(t, ctx,
		chromedp.Navigate(u+"/ui/tasks?session="+sessions[3]),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/ui/tasks/`+dead+`"]`)),
	)

	// A forged CSRF token changes nothing.
	run(t, ctx,
		chromedp.Navigate(u+"/ui/dlq"),
		chromedp.WaitVisible(chromedp.CSS(`#sel-`+dead)),
		shot("dlq"),
		chromedp.SetValue(chromedp.CSS(`form[action="/ui/dlq"][method="post"] input[name="csrf"]`), "forged0000000000"),
		chromedp.Click(chromedp.CSS(`#sel-`+dead)),
		chromedp.Click(chromedp.CSS(`button[value="requeue"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[role="status"]`)),
	)
	require.Equal(t, "Refused", text(ctx, t, "h1"))
	require.EqualValues(t, 1, deadCount(t, env), "nothing requeued on a forged token")

	// Requeue the dead letter: the confirmation names how many, then the
	// task runs again and completes.
	run(t, ctx,
		chromedp.Navigate(u+"/ui/dlq?outcome=auth_failed"),
		chromedp.WaitVisible(chromedp.CSS(`#sel-`+dead)),
		chromedp.Click(chromedp.CSS(`#sel-`+dead)),
		chromedp.Click(chromedp.CSS(`button[value="requeue"]`)),
		chromedp.WaitReady(chromedp.CSS(`input[name="confirm"]`)),
		shot("confirm"),
	)
	require.Equal(t, "Requeue 1 dead letter?", text(ctx, t, "h1"))
	run(t, ctx,
		chromedp.Click(chromedp.CSS(`form[action="/ui/dlq"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[role="status"]`)),
	)
	require.Equal(t, "Requeued 1 dead letter.", text(ctx, t, `[role="status"]`))
	run(t, ctx,
		chromedp.Navigate(u+"/ui/tasks"),
		chromedp.SendKeys(chromedp.CSS("#q-id"), dead),
		chromedp.Submit(chromedp.CSS("#q-id")),
		chromedp.WaitVisible(chromedp.CSS(`[data-f="state"]`)),
		until(`document.querySelector('[data-f="state"]').textContent === "completed"`, 20*time.Second),
		chromedp.WaitVisible(chromedp.CSS(`[data-f="outcome"]`)),
		shot("task"),
	)
	require.Equal(t, "logged_out", text(ctx, t, `[data-f="outcome"]`))
	require.EqualValues(t, 0, deadCount(t, env))
	require.Equal(t, 2, env.Fake.LogoutCalls(sessions[3]), "one 401, one logout after the requeue")

	// Phone width: nothing wider than the screen.
	for _, p := range []string{"/ui/", "/ui/batches/" + info.BatchID, "/ui/dlq", "/ui/tasks/" + dead} {
		run(t, ctx,
			phone(true),
			chromedp.Navigate(u+p),
			chromedp.WaitVisible(chromedp.CSS("h1")),
		)
		over, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
		require.NoError(t, err)
		require.False(t, over, "%s overflows a phone's width", p)
	}
	run(t, ctx,
		chromedp.Navigate(u+"/ui/"), chromedp.WaitVisible(chromedp.CSS(".card")), shot("phone-overview"),
		chromedp.Navigate(u+"/ui/batches/"+info.BatchID), chromedp.WaitVisible(chromedp.CSS("h1")), shot("phone-batch"),
		phone(false),
	)

	// Sign out: the session is gone, pages lead to the sign-in form again.
	run(t, ctx,
		chromedp.Navigate(u+"/ui/"),
		chromedp.Click(chromedp.CSS(`.signout button`)),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.Navigate(u+"/ui/batches"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
	)
	loc = location(ctx, t)
	require.Contains(t, loc, "/ui/signin")
}

// deadLetterID returns the id of the environment's only dead letter.
func deadLetterID(t *testing.T, env *wahaqtest.Env) string {
	t.Helper()
	p, err := env.Inspector.DeadLetters(context.Background(), "", 0, 10)
	require.NoError(t, err)
	require.Len(t, p.Tasks, 1, "one dead letter: "+strconv.Itoa(len(p.Tasks)))
	return p.Tasks[0].ID
}
