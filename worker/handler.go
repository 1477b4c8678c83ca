package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/wahaq/wahaq/internal/asynqcompat"
	"github.com/wahaq/wahaq/internal/base"
	"github.com/wahaq/wahaq/internal/store"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
)

// attempt is one run of one task.
type attempt struct {
	ID       string
	Payload  base.Payload
	Number   int // 1 for the first attempt
	Started  time.Time
	Instance *instance
	Log      zerolog.Logger
	span     trace.Span // the attempt's span (a no-op one when tracing is off)
	// discovery is set on an attempt of a discovery task (Payload then
	// names only the instance).
	discovery *discovery
	// viaAsynq: asynq delivered the attempt and is told its fate when the
	// handler returns (not Work).
	viaAsynq bool
	// settle: the worker's own asynq server delivered the attempt (its
	// client hook answers asynq's done of a task the Finish settled); a
	// server of the caller's (Handler mounted there) does every done
	// itself, and a settled task would be "NOT FOUND" to it.
	settle bool
	// taken is the start the take script did when it dequeued the task
	// (take.go), nil when it did not; the start step then runs no script.
	taken *store.StartResult
}

// answer is what the inner steps report: WAHA's answer, or why there was
// none. NotStarted means the attempt gave way to a limit and should be handed
// back to the queue after RetryAfter, spending no retry.
type answer struct {
	Result     *wahaclient.LogoutResult
	Err        error
	NotStarted bool
	RetryAfter time.Duration
	// RedisDown: NotStarted because Redis did not answer.
	RedisDown bool
	// Called: the WAHA server was called (the breaker counts only these).
	Called bool
	// Dropped: NotStarted because the delivery must not run at all (the
	// task ended already); asynq is told it is done.
	Dropped bool
}

// outageWait is how long an attempt waits for Redis to answer again (a
// Sentinel failover) before it hands the task back to asynq. asynq writes the
// task's fate right after the handler returns, and if Redis is still down it
// never manages to (its syncer retries with a context it has already
// canceled), so the task sits in asynq's active list until its lease is long
// expired, and its concurrency slot stays taken. It stays under asynq's 30 s
// lease.
const outageWait = 20 * time.Second

// awaitRedis waits, up to outageWait, until Redis answers.
func (w *Worker) awaitRedis(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outageWait)
	defer cancel()
	poll(ctx, w.cfg.Now, time.Time{}, redisPause, func() bool { return w.cfg.Redis.Ping(ctx).Err() == nil })
}

// step is one layer of the logout handler.
type step func(ctx context.Context, a *attempt) answer

// middleware wraps a step, like Watermill's handler middlewares.
type middleware func(step) step

func chain(s step, mws ...middleware) step {
	for i := len(mws) - 1; i >= 0; i-- {
		s = mws[i](s)
	}
	return s
}

// ProcessTask implements asynq.Handler for logout tasks.
func (w *Worker) ProcessTask(ctx context.Context, t *asynq.Task) error {
	id, _ := asynq.GetTaskID(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	return w.process(ctx, id, retried, t.Payload(), true)
}

// Work runs one attempt of the logout task id with payload (as asynq holds
// it) synchronously, outside asynq: the same chain and policy as
// ProcessTask, as the attempt after retried failed ones. The returned error
// is what asynq would be told (nil when the task completed). It is for tests
// (wahaqtest.Env.Work); nothing schedules a retry it asks for.
func (w *Worker) Work(ctx context.Context, id string, payload []byte, retried int) error {
	return w.process(ctx, id, retried, payload, false)
}

func (w *Worker) process(ctx context.Context, id string, retried int, payload []byte, viaAsynq bool) error {
	p, err := base.DecodePayload(payload)
	if err != nil {
		// Nothing to record it under; asynq archives it for a person.
		w.log.Error().Str("task_id", id).Err(err).Msg("undecodable payload")
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	_, own := ctx.Value(ownServer{}).(ownServer)
	a := &attempt{ID: id, Payload: p, Number: retried + 1, Started: w.cfg.Now(), viaAsynq: viaAsynq, settle: viaAsynq && own}
	if viaAsynq {
		if r, ok := asynqcompat.TakeStart(id); ok {
			if r, ok := r.(store.StartResult); ok {
				a.taken = &r
			}
		}
	}
	ctx = startAttempt(ctx, a)
	defer a.span.End()
	a.Log = w.log
	if w.log.GetLevel() != zerolog.Disabled {
		// The context costs an allocation per task; skip it when nothing is
		// logged at all.
		a.Log = w.log.With().Str("task_id", id).Str("instance", p.Instance).Str("session", p.Session).Int("attempt", a.Number).Logger()
	}
	inst, ok := w.instances[p.Instance]
	if !ok {
		return w.record(ctx, a, answer{Err: fmt.Errorf("%w: instance %q is not configured on this worker", tasks.ErrInvalidInput, p.Instance)}, 0, true)
	}
	a.Instance = inst
	defer w.held.remove(inst.name, id)
	ans := w.pipeline(ctx, a)
	return w.record(ctx, a, ans, w.cfg.Now().Sub(a.Started), false)
}

// record is the policy at the top of the chain: it classifies the answer,
// writes the task's record (which also frees its concurrency slot) and tells
// asynq what to do next. It runs even when ctx has expired: the record must
// be written whatever happened to the attempt.
func (w *Worker) record(ctx context.Context, a *attempt, ans answer, d time.Duration, claim bool) error {
	if ans.Dropped {
		return nil
	}
	if ans.NotStarted {
		if ans.RedisDown {
			w.awaitRedis(ctx)
		}
		return &retryError{err: errThrottled, delay: ans.RetryAfter}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outageWait)
	defer cancel()
	if claim {
		// The attempt never reached the slot step; mark it started so the
		// record exists and its transition is counted.
		if _, err := w.starter.Start(wctx, a.ID, a.Payload, a.Number, 0, w.cfg.SlotLease); err != nil {
			return err
		}
	}
	if w.operatorCanceled(ctx, ans.Err) {
		return w.recordOperatorCancel(wctx, a)
	}
	fin, delay := w.decide(a, ans.Result, ans.Err)
	endAttempt(a, fin)
	sf, err := fin.finish()
	sf.Attempt, sf.StartedAt, sf.HTTPStatus = a.Number, a.Started, httpStatus(ans)
	// a completed attempt asynq delivered is settled on asynq's side in the
	// same step: asynq's done then costs no round trip (asynqcompat.Hook.Settled)
	sf.Settle = a.settle && fin.State == tasks.StateCompleted && w.hook.Fence().Settle()
	sf.AwaitEvents = awaitsEvents(a, fin, ans.Result)
	settled := false
	if err == nil {
		// While Redis fails over, keep the result rather than run the
		// logout again.
		poll(wctx, w.cfg.Now, time.Time{}, redisPause, func() bool {
			settled, err = w.finishes.finish(wctx, a.ID, a.Payload, sf)
			return err == nil
		})
	}
	if settled {
		w.hook.Settled(a.ID, w.cfg.Now())
	}
	if err == nil && fin.State.Final() {
		// its callbacks and subscriptions may be due now
		w.wakeDeliveries(a.Payload.Instance)
	}
	if err != nil {
		// Redis is unreachable: let asynq retry; the logout is idempotent.
		a.Log.Error().Err(err).Msg("cannot record attempt")
		return &retryError{err: err, delay: backoff(1, w.cfg.RetryBase, w.cfg.RetryMax)}
	}
	ev := a.Log.Info()
	if fin.State != tasks.StateCompleted {
		ev = a.Log.Warn()
	}
	ev = ev.Str("state", string(fin.State)).Dur("duration", d)
	if fin.Outcome != "" && fin.State != tasks.StateRetrying {
		ev = ev.Str("outcome", string(fin.Outcome))
		w.metrics.Tasks.WithLabelValues(a.Payload.Instance, string(fin.Outcome)).Inc()
	}
	if fin.LastError != "" {
		ev = ev.Str("error", fin.LastError)
	}
	switch fin.State {
	case tasks.StateCompleted:
		ev.Msg("logout done")
		return nil
	case tasks.StateDead:
		ev.Msg("task dead-lettered")
		return &deadError{outcome: string(fin.Outcome), reason: fin.LastError}
	default:
		ev.Dur("retry_in", delay).Msg("logout failed; will retry")
		w.metrics.Retries.WithLabelValues(a.Payload.Instance).Inc()
		return &retryError{err: errors.New(fin.LastError), delay: delay, at: fin.NextAttempt}
	}
}

// httpStatus is WAHA's status code in ans, or 0 when no answer came.
func httpStatus(ans answer) int {
	if ans.Err != nil {
		var apiErr *wahaclient.APIError
		if errors.As(ans.Err, &apiErr) {
			return apiErr.StatusCode
		}
		return 0
	}
	if ans.Result != nil {
		return ans.Result.HTTPStatus
	}
	return 0
}

// statusCode is strconv.Itoa without the allocation for WAHA's usual answers.
func statusCode(n int) string {
	switch n {
	case 200:
		return "200"
	case 201:
		return "201"
	}
	return strconv.Itoa(n)
}

// sessionJSON keeps the parts of WAHA's session that say what the logout did.
func sessionJSON(s *wahaclient.Session) json.RawMessage {
	if s.Me == nil && plainJSONString(s.Name) && plainJSONString(s.Status) {
		// What json.Marshal writes below, in one allocation: a session after a
		// logout has no account, and names and statuses are plain ASCII.
		b := make([]byte, 0, 36+len(s.Name)+len(s.Status))
		b = append(b, `{"name":"`...)
		b = append(b, s.Name...)
		b = append(b, `","status":"`...)
		b = append(b, s.Status...)
		b = append(b, `","me":null}`...)
		return b
	}
	b, err := json.Marshal(struct {
		Name   string         `json:"name"`
		Status string         `json:"status"`
		Me     *wahaclient.Me `json:"me"`
	}{s.Name, s.Status, s.Me})
	if err != nil {
		return nil
	}
	return b
}

// plainJSONString reports whether encoding/json writes s as itself between
// quotes: printable ASCII without '"', '\\' and the HTML characters it
// escapes.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// rateLimit converts a per-second rate into redis_rate's terms: n starts
// (n = the rate rounded up) per the period in which the rate allows n, so a
// fractional rate is kept exactly (2.5/s is 3 per 1.2 s, one every 400 ms)
// and a rate below one per second becomes one per 1/rate seconds.
func rateLimit(perSecond float64) *redis_rate.Limit {
	if perSecond <= 0 {
		return nil
	}
	n := int(math.Ceil(perSecond))
	return &redis_rate.Limit{Rate: n, Burst: n, Period: time.Duration(float64(n) / perSecond * float64(time.Second))}
}

// awaitsEvents says whether a completed attempt's logout awaits WAHA's
// session.status events to confirm it: on an instance whose events wahaq
// receives, a logout that found the session. A session WAHA answered as
// STOPPED was not running, and WAHA emits nothing for it; an answer without
// a session (the deprecated route) may have stopped a running one.
func awaitsEvents(a *attempt, fin verdict, res *wahaclient.LogoutResult) bool {
	if a.Instance == nil || !a.Instance.awaitEvents || fin.State != tasks.StateCompleted || fin.Outcome != tasks.OutcomeLoggedOut {
		return false
	}
	return res == nil || res.Session == nil || res.Session.Status != "STOPPED"
}
