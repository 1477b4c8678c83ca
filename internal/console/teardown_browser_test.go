package console_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/console"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
	"github.com/wahaq/wahaq/wahaqtest"
)

// TestBrowserTeardown drives the New teardown form in a real headless
// Chromium: the preview names what the teardown would take and calls no
// logout; the teardown starts only once the server's name is typed (a wrong
// name is refused by the browser and, past it, by the server); the batch
// page pauses the batch, whose tasks then wait with a worker running, and
// resumes it until done.
func TestBrowserTeardown(t *testing.T) {
	env := wahaqtest.Start(t, wahaqtest.Options{NoStart: true})
	env.Fake.AddSessions("shop", 30, wahafake.StatusWorking)
	env.Fake.AddSessions("old", 5, wahafake.StatusFailed)
	srv := serve(t, env, func(cfg *console.Config) { cfg.Refresh = time.Second })
	ctx := browser(t)
	u := srv.URL

	run(t, ctx,
		chromedp.Navigate(u+"/ui/teardown"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("#teardown-form")),
		chromedp.Click(chromedp.CSS("#sel-statuses")),
		chromedp.Click(chromedp.CSS("#st-WORKING")),
		chromedp.Click(chromedp.CSS(`button[value="preview"]`)),
		chromedp.WaitVisible(chromedp.CSS("#preview")),
		shot("teardown-preview"),
	)
	require.Equal(t, "30", text(ctx, t, "#would"))
	require.Contains(t, text(ctx, t, ".names"), "shop-0001")
	require.Zero(t, env.Fake.Stats().TotalLogoutCalls, "a preview calls no logout")
	batches := func() int {
		bs, err := env.Inspector.RecentBatches(context.Background(), 0)
		require.NoError(t, err)
		return len(bs)
	}
	require.Zero(t, batches(), "a preview starts nothing")

	// A wrong name: the browser does not send the form.
	run(t, ctx,
		chromedp.SendKeys(chromedp.CSS("#confirm_server"), "defaul"),
		chromedp.Click(chromedp.CSS(`button[value="start"]`)),
	)
	valid, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#confirm_server').checkValidity()`))
	require.NoError(t, err)
	require.False(t, valid)
	require.Zero(t, batches(), "a wrong name starts nothing")
	// Past the browser's check, the server refuses it too.
	run(t, ctx,
		chromedp.RemoveAttribute(chromedp.CSS("#confirm_server"), "pattern"),
		chromedp.Click(chromedp.CSS(`button[value="start"]`)),
		chromedp.WaitVisible(chromedp.CSS(`p.error`)),
	)
	require.Contains(t, text(ctx, t, "p.error"), "Type the server's name")
	require.Zero(t, batches(), "a wrong name starts nothing")

	// The right name starts it: the batch's page.
	run(t, ctx,
		chromedp.SendKeys(chromedp.CSS("#confirm_server"), env.Instance),
		chromedp.Click(chromedp.CSS(`button[value="start"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-f="status"]`)),
	)
	loc := location(ctx, t)
	require.Contains(t, loc, "/ui/batches/")
	id := loc[strings.LastIndex(loc, "/")+1:]
	require.Equal(t, 1, batches())

	// Pause it, then let a worker run: none of its tasks starts.
	run(t, ctx,
		chromedp.Click(chromedp.CSS(`form[action$="/pause"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`p.paused`)),
	)
	require.Contains(t, text(ctx, t, "p.paused"), "by env-", "paused by the signed-in token's name")
	require.NoError(t, env.Worker.Start())
	require.Eventually(t, func() bool {
		b, err := env.Inspector.Batch(context.Background(), id)
		require.NoError(t, err)
		return !b.Discovering && b.Total == 30
	}, 30*time.Second, 50*time.Millisecond, "the discovery fills the paused batch")
	run(t, ctx,
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`p.paused`)),
		shot("batch-paused"),
	)
	require.Equal(t, "paused", text(ctx, t, `[data-f="status"]`))
	require.Zero(t, env.Fake.Stats().TotalLogoutCalls, "a paused batch starts none of its tasks")

	run(t, ctx,
		chromedp.Click(chromedp.CSS(`form[action$="/resume"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/pause"] button`)),
		until(`document.querySelector('[data-f="status"]').textContent === "done"`, 30*time.Second),
	)
	st := env.Fake.Stats()
	require.Equal(t, 30, st.TotalLogoutCalls)
	for name, n := range st.LogoutCalls {
		require.Equal(t, 1, n, name)
		require.True(t, strings.HasPrefix(name, "shop-"), name)
	}
}
