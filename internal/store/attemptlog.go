package store

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Attempt history. The finish script appends one compact line per attempt to
// the record's FieldLog, keeping the last MaxAttemptLog:
//
//	<attempt>,<start - enq ms>,<duration ms>,<http status>,<outcome>,<error>
//
// Times are relative to the record's enqueue time, so a typical one-attempt
// logout costs about 25 bytes ("1,3,41,200,logged_out,") and the hash stays
// in Redis's compact listpack encoding (values under 64 bytes). The outcome
// is the task's outcome for the attempt that ended it, or "retrying". The
// error, last so it may hold commas, is shortened to MaxAttemptError bytes
// and holds no line break (lines separate entries).

// MaxAttemptLog is how many attempts a record's history keeps (the last ones).
const MaxAttemptLog = 20

// MaxAttemptError is how many bytes of an attempt's error the history keeps.
const MaxAttemptError = 120

// AttemptRetrying is the outcome of an attempt after which the task retried.
const AttemptRetrying = "retrying"

// FieldLog is the record field holding the attempt history.
const FieldLog = "log"

// Attempt numbers across fresh starts. A dead-letter requeue (or a run from
// asynq's archive, or a revival by the reconciler) gives a task fresh
// retries: the worker's attempt number, which its retry budget counts,
// starts again at 1. The numbers people see keep counting (issue 22: a
// requeued task's history had held two entries both numbered 1): the
// script that starts afresh stores the number of the history's last entry
// in FieldAttemptBase, and the attempt numbers written into FieldAttempts
// and the history are the worker's plus that base. tasks marks the first
// attempt after such a start (its Attempt.Requeued), since the entry
// before it ended the task.

// attemptBaseLua defines attempt_last(log): the number of the last entry of
// a record's history, 0 for none.
const attemptBaseLua = `
local function attempt_last(log)
  if not log then return 0 end
  return tonumber(string.match(string.match(log, '([^\n]*)$'), '^(%d+),')) or 0
end
`

// attemptLogLua defines attempt_log(entry, now, enq, log, base),
// used by finishScript. entry is "<attempt>,<start ms>,<rest>" from
// attemptEntry; the script adds base (FieldAttemptBase) to the attempt,
// makes the start relative to the record's enq and adds the duration.
// The same entry applied twice (a Finish sent again after a lost reply) is
// kept once: an entry with the same attempt and start as the last is dropped.
// It returns true when the log's last entry is this attempt's, so the
// caller may leave out what that entry already says (see derivedFields),
// and the new history when it changed, which the caller writes with its own
// HSET of the record: one redis.call fewer per finish. enq and log are the
// record's fields of those names, which the caller has read already.
const attemptLogLua = `
local function attempt_log(entry, now, enq, log, base)
  local a, st, rest = string.match(entry, '^(%d+),(%d+),(.*)$')
  if not a then return false, nil end
  a = tostring(tonumber(a) + (tonumber(base or '0') or 0))
  st = tonumber(st)
  enq = tonumber(enq or '0') or 0
  local head = a .. ',' .. string.format('%d', st - enq) .. ','
  local e = head .. string.format('%d', tonumber(now) - st) .. ',' .. rest
  if log then
    local last = string.match(log, '([^\n]*)$')
    if string.sub(last, 1, #head) == head then return true, nil end
    log = log .. '\n' .. e
    local _, n = string.gsub(log, '\n', '')
    while n >= 20 do -- MaxAttemptLog
      log = string.sub(log, string.find(log, '\n', 1, true) + 1)
      n = n - 1
    end
  else
    log = e
  end
  return true, log
end
`

// Derived fields. A final record whose attempt history ends with its last
// attempt keeps neither FieldAttempts nor FieldFinished: the last entry's
// number is the attempt count and its end (start + duration, written from
// the same "now") is the finish time. Two fields fewer keep a completed
// record at 8 fields, so its hash table has 8 buckets instead of 16, which
// with the two entries saves about 170 bytes per retained result (issue 14's
// 1024 B target). A field present always wins over the log: requeue, the
// reconciler and cancel write them, and a record finished without a history
// entry keeps them as before.

// RecordAttempts is the attempt count of a raw record hash m: FieldAttempts,
// or the number of the last attempt in FieldLog when the field is left out.
func RecordAttempts(m map[string]string) int {
	if v, ok := m[FieldAttempts]; ok {
		n, _ := strconv.Atoi(v)
		return n
	}
	if last, ok := lastAttempt(m); ok {
		return last.Number
	}
	return 0
}

// recordFinished is the finish time of a raw record hash m: FieldFinished,
// or, for a final record that leaves it out, the end of its last attempt.
func recordFinished(m map[string]string) *time.Time {
	if v, ok := m[FieldFinished]; ok {
		return msTime(v)
	}
	switch m[FieldState] {
	case StateCompleted, StateDead, StateCanceled:
	default:
		return nil
	}
	if last, ok := lastAttempt(m); ok {
		t := last.FinishedAt
		return &t
	}
	return nil
}

// lastAttempt decodes the last entry of m's attempt history.
func lastAttempt(m map[string]string) (Attempt, bool) {
	log := m[FieldLog]
	if log == "" {
		return Attempt{}, false
	}
	if i := strings.LastIndexByte(log, '\n'); i >= 0 {
		log = log[i+1:]
	}
	enq, _ := strconv.ParseInt(m[FieldEnqueued], 10, 64)
	a := decodeAttemptLog(log, enq)
	if len(a) == 0 {
		return Attempt{}, false
	}
	return a[0], true
}

// attemptEntry is f's history entry as finishScript takes it, or "" when f
// records no attempt.
func attemptEntry(f Finish) string {
	if f.Attempt <= 0 || f.StartedAt.IsZero() {
		return ""
	}
	outcome := f.Outcome
	if f.State == StateRetrying || outcome == "" {
		outcome = AttemptRetrying
	}
	b := make([]byte, 0, 48+len(outcome)+min(len(f.LastError), MaxAttemptError+4))
	b = strconv.AppendInt(b, int64(f.Attempt), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, f.StartedAt.UnixMilli(), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(f.HTTPStatus), 10)
	b = append(b, ',')
	b = append(b, outcome...)
	b = append(b, ',')
	b = append(b, ShortenError(f.LastError)...)
	return string(b)
}

// ShortenError is err as the attempt history keeps it: on one line, at most
// MaxAttemptError bytes (cut on a character boundary, marked with "…").
func ShortenError(err string) string {
	if strings.ContainsAny(err, "\r\n") {
		err = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(err)
	}
	if len(err) <= MaxAttemptError {
		return err
	}
	cut := MaxAttemptError - len("…")
	for cut > 0 && !utf8.RuneStart(err[cut]) {
		cut--
	}
	return err[:cut] + "…"
}

// Attempt is one entry of a task's attempt history.
type Attempt struct {
	// Number is the attempt's number, counting on across requeues.
	Number int
	// StartedAt and FinishedAt bound the attempt.
	StartedAt, FinishedAt time.Time
	// HTTPStatus is WAHA's status code; 0 when no answer came.
	HTTPStatus int
	// Outcome is the task's outcome after this attempt, or AttemptRetrying.
	Outcome string
	// Error is the attempt's shortened error, if any.
	Error string
}

// decodeAttemptLog parses FieldLog; enq is the record's enqueue time (ms).
// Lines that do not parse are skipped.
func decodeAttemptLog(log string, enq int64) []Attempt {
	if log == "" {
		return nil
	}
	out := make([]Attempt, 0, strings.Count(log, "\n")+1)
	for line := range strings.SplitSeq(log, "\n") {
		f := strings.SplitN(line, ",", 6)
		if len(f) != 6 {
			continue
		}
		n, err1 := strconv.Atoi(f[0])
		off, err2 := strconv.ParseInt(f[1], 10, 64)
		dur, err3 := strconv.ParseInt(f[2], 10, 64)
		code, err4 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			continue
		}
		start := time.UnixMilli(enq + off).UTC()
		out = append(out, Attempt{Number: n, StartedAt: start, FinishedAt: start.Add(time.Duration(dur) * time.Millisecond),
			HTTPStatus: code, Outcome: f[4], Error: f[5]})
	}
	return out
}
