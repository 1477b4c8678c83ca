package store_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
)

// enqueueCB enqueues a logout of session with a callback URL.
func (f *fixture) enqueueCB(session, url string) store.Enqueued {
	f.t.Helper()
	res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: session, MaxRetries: 3, CallbackURL: url}})
	require.NoError(f.t, err)
	return res[0]
}

// complete starts and completes a task.
func (f *fixture) complete(id string, p base.Payload) {
	f.t.Helper()
	f.start(id, p)
	require.NoError(f.t, f.st.Finish(f.ctx, id, p, store.Finish{State: store.StateCompleted, Outcome: "logged_out", ResultTTL: time.Hour}))
}

// deliveries maps the delivery set's ids to their URL and ref.
func (f *fixture) deliveries() map[string][2]string {
	f.t.Helper()
	out := map[string][2]string{}
	for _, id := range f.zmembers(f.k.Deliveries()) {
		h := f.hash(f.k.Delivery(id))
		out[id] = [2]string{h["url"], h["ref"]}
	}
	return out
}

// TestEnqueueJoinCallbacks: the enqueue script keeps the callback URL of
// every request that joins a live task, once per URL, up to MaxCallbacks;
// a request beyond it changes nothing and is flagged.
func TestEnqueueJoinCallbacks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		urls     []string // the requests, in order; "" = none
		wantCB   string
		wantMore []string
		wantFull []bool
	}{
		{"one", []string{"http://a/1"}, "http://a/1", nil, []bool{false}},
		{"first without, second with", []string{"", "http://a/2"}, "http://a/2", nil, []bool{false, false}},
		{"three joiners", []string{"http://a/1", "http://a/2", "http://a/3"}, "http://a/1", []string{"http://a/2", "http://a/3"}, []bool{false, false, false}},
		{"the same URL twice", []string{"http://a/1", "http://a/2", "http://a/1", "http://a/2"}, "http://a/1", []string{"http://a/2"}, []bool{false, false, false, false}},
		{"one past the limit", func() []string {
			var u []string
			for i := range store.MaxCallbacks + 1 {
				u = append(u, fmt.Sprintf("http://a/%d", i))
			}
			return u
		}(), "http://a/0", func() []string {
			var u []string
			for i := 1; i < store.MaxCallbacks; i++ {
				u = append(u, fmt.Sprintf("http://a/%d", i))
			}
			return u
		}(), append(make([]bool, store.MaxCallbacks), true)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			var id string
			for i, u := range tc.urls {
				res := f.enqueueCB("s", u)
				if i == 0 {
					id = res.ID
				} else {
					require.Equal(t, id, res.ID)
					require.True(t, res.Deduplicated)
				}
				require.Equal(t, tc.wantFull[i], res.CallbacksFull, "request %d", i)
			}
			h := f.hash(f.k.Record(id))
			require.Equal(t, tc.wantCB, h[store.FieldCallbackURL])
			var more []string
			if h[store.FieldCallbackMore] != "" {
				more = strings.Split(h[store.FieldCallbackMore], "\n")
			}
			require.Equal(t, tc.wantMore, more)
		})
	}
}

// TestFullCallbacksDoNotPullForward: a request refused for a full task's
// callbacks does not move the task's schedule either.
func TestFullCallbacksDoNotPullForward(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	later := f.now.Add(time.Hour)
	var id string
	for i := range store.MaxCallbacks {
		res, err := f.st.Enqueue(f.ctx, []store.NewTask{{Instance: "default", Session: "s", MaxRetries: 3, ProcessAt: later,
			CallbackURL: fmt.Sprintf("http://a/%d", i)}})
		require.NoError(t, err)
		id = res[0].ID
	}
	res := f.enqueueCB("s", "http://a/now")
	require.True(t, res.CallbacksFull)
	require.False(t, res.Rescheduled)
	require.Equal(t, "scheduled", f.hash(f.k.Record(id))["state"])
	require.Equal(t, []string{id}, f.zmembers(f.k.Scheduled()))
}

// TestFinishEnqueuesEveryDelivery: a task ending enqueues one delivery per
// URL it holds and one per subscription of the queue whose events name the
// end; a batch becoming done, one for its callback and its subscriptions.
// None goes to asynq's queue.
func TestFinishEnqueuesEveryDelivery(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		urls []string
		subs map[string]string // id -> queue copy
		want []string          // URLs delivered the task (ref t:)
	}{
		{"no callback, no subscription", nil, nil, nil},
		{"one", []string{"http://a/1"}, nil, []string{"http://a/1"}},
		{"three", []string{"http://a/1", "http://a/2", "http://a/3"}, nil, []string{"http://a/1", "http://a/2", "http://a/3"}},
		{"subscriptions by event", nil, map[string]string{"s1": "task.final|http://s/1", "s2": "batch.done|http://s/2", "s3": "task.final,batch.done|http://s/3"},
			[]string{"http://s/1", "http://s/3"}},
		{"both", []string{"http://a/1"}, map[string]string{"s1": "task.final|http://s/1"}, []string{"http://a/1", "http://s/1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			for id, v := range tc.subs {
				require.NoError(t, f.rdb.HSet(f.ctx, f.k.Subscriptions(), id, v).Err())
			}
			var id string
			for _, u := range append([]string{""}, tc.urls...) {
				id = f.enqueueCB("s", u).ID
			}
			pendingBefore := f.list(f.k.Pending())
			f.complete(id, base.Payload{Instance: "default", Session: "s", MaxRetries: 3})
			require.Equal(t, pendingBefore, f.list(f.k.Pending()), "no delivery in asynq's queue")
			var got []string
			for did, d := range f.deliveries() {
				require.Equal(t, "t:"+id, d[1])
				got = append(got, d[0])
				h := f.hash(f.k.Delivery(did))
				require.Equal(t, fmt.Sprint(f.now.UnixNano()), h["at"])
				if strings.HasPrefix(d[0], "http://s/") {
					require.NotEmpty(t, h["sub"], "a subscription's delivery names it")
				}
			}
			require.ElementsMatch(t, tc.want, got)
			if len(tc.urls) > 0 {
				rec := f.hash(f.k.Record(id))
				require.Equal(t, store.CallbackPending, rec[store.FieldCallbackState])
				require.Equal(t, [2]string{tc.urls[0], "t:" + id}, f.deliveries()[rec[store.FieldCallbackID]], "cb_id names the first URL's delivery")
			}
			// applied again (a lost reply): nothing more
			require.NoError(t, f.st.Finish(f.ctx, id, base.Payload{Instance: "default", Session: "s", MaxRetries: 3},
				store.Finish{State: store.StateCompleted, Outcome: "logged_out", ResultTTL: time.Hour}))
			require.Len(t, f.deliveries(), len(tc.want))
		})
	}
}

// TestBatchDoneSubscription: a batch without a callback becoming done
// delivers to its batch.done subscriptions once.
func TestBatchDoneSubscription(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	require.NoError(t, f.rdb.HSet(f.ctx, f.k.Subscriptions(), "s1", "batch.done|http://s/1").Err())
	bid, ids := f.batch("x")
	f.complete(ids[0], base.Payload{Instance: "default", Session: "x", BatchID: bid, MaxRetries: 3})
	got := f.deliveries()
	require.Len(t, got, 1)
	for _, d := range got {
		require.Equal(t, [2]string{"http://s/1", "b:" + bid}, d)
	}
}

// TestDeliveryLifecycle: take leases due deliveries; a retry is due again
// at its next attempt; delivered and failed ones are gone; the primary
// delivery's state shows in the record; a deferral spends no attempt.
func TestDeliveryLifecycle(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		state     string
		wantGone  bool
		wantScore time.Duration // after now, when not gone
	}{
		{"delivered", store.CallbackDelivered, true, 0},
		{"failed", store.CallbackFailed, true, 0},
		{"retry", store.CallbackPending, false, 30 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			id := f.enqueueCB("s", "http://a/1").ID
			f.enqueueCB("s", "http://a/2")
			f.complete(id, base.Payload{Instance: "default", Session: "s", MaxRetries: 3})

			ds, err := f.st.TakeDeliveries(f.ctx, "default", 10, time.Minute)
			require.NoError(t, err)
			require.Len(t, ds, 2)
			again, err := f.st.TakeDeliveries(f.ctx, "default", 10, time.Minute)
			require.NoError(t, err)
			require.Empty(t, again, "leased: not taken twice")
			for _, d := range ds {
				require.Equal(t, base.CallbackTask, d.Kind)
				require.Equal(t, id, d.Ref)
				require.Equal(t, f.now, d.Since)
				require.Zero(t, d.Attempts)
				score := f.rdb.ZScore(f.ctx, f.k.Deliveries(), d.ID).Val()
				require.Equal(t, float64(f.now.Add(time.Minute).UnixMilli()), score, "scored by its lease")
			}
			primary := f.hash(f.k.Record(id))[store.FieldCallbackID]
			slices.SortFunc(ds, func(a, b store.Delivery) int { return strings.Compare(a.URL, b.URL) })
			require.Equal(t, primary, ds[0].ID)

			for _, d := range ds {
				ok, err := f.st.RecordDelivery(f.ctx, "default", d, store.Callback{State: tc.state, Attempts: 1, Status: 500, LastError: "HTTP 500"},
					f.now.Add(tc.wantScore))
				require.NoError(t, err)
				require.True(t, ok)
				if tc.wantGone {
					require.False(t, f.exists(f.k.Delivery(d.ID)))
				} else {
					require.Equal(t, float64(f.now.Add(tc.wantScore).UnixMilli()), f.rdb.ZScore(f.ctx, f.k.Deliveries(), d.ID).Val())
					require.Equal(t, "1", f.hash(f.k.Delivery(d.ID))["n"])
				}
			}
			if tc.wantGone {
				require.Empty(t, f.zmembers(f.k.Deliveries()))
			}
			rec := f.hash(f.k.Record(id))
			require.Equal(t, tc.state, rec[store.FieldCallbackState], "the primary's state in the record")
			require.Equal(t, "500", rec[store.FieldCallbackStatus])

			if !tc.wantGone {
				// due again once its next attempt comes; a deferral moves it
				// without counting an attempt
				f.now = f.now.Add(tc.wantScore)
				ds, err := f.st.TakeDeliveries(f.ctx, "default", 10, time.Minute)
				require.NoError(t, err)
				require.Len(t, ds, 2)
				require.Equal(t, 1, ds[0].Attempts)
				require.NoError(t, f.st.DeferDelivery(f.ctx, "default", ds[0].ID, f.now))
				ds2, err := f.st.TakeDeliveries(f.ctx, "default", 10, time.Minute)
				require.NoError(t, err)
				require.Len(t, ds2, 1)
				require.Equal(t, ds[0].ID, ds2[0].ID)
				require.Equal(t, 1, ds2[0].Attempts)
			}
			// a delivery recorded twice (gone): reported, nothing written
			if tc.wantGone {
				ok, err := f.st.RecordDelivery(f.ctx, "default", ds[0], store.Callback{State: store.CallbackPending, Attempts: 2}, f.now)
				require.NoError(t, err)
				require.False(t, ok)
				require.Empty(t, f.zmembers(f.k.Deliveries()))
			}
		})
	}
}

// TestAdoptCallback: a legacy asynq delivery is moved into the delivery
// set while it is the record's current one.
func TestAdoptCallback(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		cbID     string
		adopt    string
		want     bool
		wantDue  int
		noRecord bool
	}{
		{"current", "d1", "d1", true, 1, false},
		{"superseded", "d2", "d1", false, 0, false},
		{"record gone", "", "d1", false, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if !tc.noRecord {
				require.NoError(t, f.rdb.HSet(f.ctx, f.k.Record("t1"), "state", "completed", store.FieldCallbackURL, "http://a/1",
					store.FieldCallbackID, tc.cbID, store.FieldCallbackSince, "5").Err())
			}
			for range 2 { // idempotent
				ok, err := f.st.AdoptCallback(f.ctx, "default", base.CallbackTask, "t1", tc.adopt)
				require.NoError(t, err)
				require.Equal(t, tc.want, ok)
			}
			require.Len(t, f.zmembers(f.k.Deliveries()), tc.wantDue)
			if tc.want {
				ds, err := f.st.TakeDeliveries(f.ctx, "default", 10, time.Minute)
				require.NoError(t, err)
				require.Equal(t, []store.Delivery{{ID: "d1", Kind: base.CallbackTask, Ref: "t1", URL: "http://a/1", Since: time.Unix(0, 5).UTC()}}, ds)
			}
		})
	}
}

// TestSubscriptions: the index and the queue copies move together; the
// index is bounded.
func TestSubscriptions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	eu := f.st.Keys("eu")
	a := store.Subscription{ID: "a", URL: "http://s/a", Events: []string{"task.final"}, Instances: []string{"default", "eu"}, CreatedAt: f.now}
	b := store.Subscription{ID: "b", URL: "http://s/b", Events: []string{"task.final", "batch.done"}, Instances: []string{"eu"}, CreatedAt: f.now.Add(time.Second)}
	require.NoError(t, f.st.Subscribe(f.ctx, b))
	require.NoError(t, f.st.Subscribe(f.ctx, a))
	got, err := f.st.Subscriptions(f.ctx)
	require.NoError(t, err)
	require.Equal(t, []store.Subscription{a, b}, got, "oldest first")
	require.Equal(t, map[string]string{"a": "task.final|http://s/a"}, f.hash(f.k.Subscriptions()))
	require.Equal(t, map[string]string{"a": "task.final|http://s/a", "b": "task.final,batch.done|http://s/b"}, f.hash(eu.Subscriptions()))
	live, err := f.st.SubscriptionLive(f.ctx, "eu", "b")
	require.NoError(t, err)
	require.True(t, live)

	del, err := f.st.Unsubscribe(f.ctx, "a")
	require.NoError(t, err)
	require.Equal(t, a, *del)
	require.Empty(t, f.hash(f.k.Subscriptions()))
	require.Equal(t, map[string]string{"b": "task.final,batch.done|http://s/b"}, f.hash(eu.Subscriptions()))
	_, err = f.st.Unsubscribe(f.ctx, "a")
	require.ErrorIs(t, err, base.ErrNotFound)
	_, err = f.st.Subscription(f.ctx, "a")
	require.ErrorIs(t, err, base.ErrNotFound)
	live, err = f.st.SubscriptionLive(f.ctx, "default", "a")
	require.NoError(t, err)
	require.False(t, live)

	for i := 1; i < store.MaxSubscriptions; i++ {
		require.NoError(t, f.st.Subscribe(f.ctx, store.Subscription{ID: fmt.Sprint("n", i), URL: "http://s/n", Events: []string{"task.final"}, Instances: []string{"default"}}))
	}
	err = f.st.Subscribe(f.ctx, store.Subscription{ID: "over", URL: "http://s/n", Events: []string{"task.final"}, Instances: []string{"default"}})
	require.ErrorIs(t, err, base.ErrTooManySubscriptions)
	require.False(t, f.rdb.HExists(f.ctx, f.k.Subscriptions(), "over").Val(), "no copy of a refused subscription")
}
