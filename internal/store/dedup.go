package store

import (
	"strconv"
	"time"
)

// A session's dedup claim (Keys.Dedup) names its live task. Every path that
// ends a task releases the claim in the same script: Finish (completed,
// dead), Cancel, CancelActive, CancelBatch, Purge, a requeue or restart
// superseded by another live task, and the reconciler's gone and archived
// repairs; the reconciler also releases any claim whose task is finished or
// missing (ReleaseStaleClaims).
//
// As a backstop, a claim also expires: ClaimSlack after the task's next
// planned run (its scheduled time, its next retry, or now when it is
// pending). The longest a task legitimately lives is its schedule horizon
// (tasks.DefaultMaxSchedule, 366 days, already in the scheduled time) plus
// its retries (at most max retries × the worker's largest backoff, 10 min by
// default: under 2 h for the default 10 retries) plus however long it waits
// in a backlog or a paused queue. The claim is armed when it is taken
// (enqueue, requeue, restart, revive) and re-armed when an attempt starts, a
// retry is planned, and on every reconcile sweep for a live task (each time
// only if it has drifted more than claimRearmSlack short), so only a task
// that no worker has looked at for ClaimSlack less an hour can lose its
// claim; a
// claim that outlives its task by a bug or a lost write is gone after
// ClaimSlack at the latest. Expiries are relative (PEXPIRE), computed on the
// caller's clock like every other time the scripts compare.

// ClaimSlack is how long a session's dedup claim outlives its task's next
// planned run before it expires by itself (7 days).
const ClaimSlack = 7 * 24 * time.Hour

// claimSlackMs is ClaimSlack in ms, as Lua source.
var claimSlackMs = strconv.FormatInt(ClaimSlack.Milliseconds(), 10)

// claimLua holds claim_arm, shared by the scripts that take or keep a claim.
//
// claim_arm(key, at, now) makes the claim at key expire no earlier than
// ClaimSlack - claimRearmSlack after at (ms; "" or nil means now), never
// shortening it. A missing key stays missing.
var claimLua = `
local function claim_arm(key, at, now)
  now = tonumber(now)
  local from = math.max(tonumber(at) or now, now)
  local want = from - now + ` + claimSlackMs + `
  local ttl = redis.call('PTTL', key)
  if ttl == -2 then return end
  if ttl == -1 or ttl < want - ` + claimRearmSlackMs + ` then redis.call('PEXPIRE', key, want) end
end
`

// claimRearmSlack is how far short of ClaimSlack a claim may be before
// claim_arm re-arms it. Every attempt's start re-arms its task's claim, and
// a claim taken at enqueue a moment before is short by that moment: without
// the slack each start would pay a PEXPIRE to move a seven-day expiry by a
// few milliseconds. An hour out of seven days changes nothing the backstop
// is for.
const claimRearmSlack = time.Hour

// claimRearmSlackMs is claimRearmSlack in ms, as Lua source.
var claimRearmSlackMs = strconv.FormatInt(claimRearmSlack.Milliseconds(), 10)
