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

// attemptLogLua defines attempt_log(record, entry, now), used by
// finishScript. entry is "<attempt>,<start ms>,<rest>" from attemptEntry; the
// script makes the start relative to the record's enq and adds the duration.
// The same entry applied twice (a Finish sent again after a lost reply) is
// kept once: an entry with the same attempt and start as the last is dropped.
const attemptLogLua = `
local function attempt_log(rec, entry, now)
  local a, st, rest = string.match(entry, '^(%d+),(%d+),(.*)$')
  if not a then return end
  st = tonumber(st)
  local enq = tonumber(redis.call('HGET', rec, 'enq') or '0') or 0
  local head = a .. ',' .. string.format('%d', st - enq) .. ','
  local e = head .. string.format('%d', tonumber(now) - st) .. ',' .. rest
  local log = redis.call('HGET', rec, 'log')
  if log then
    local last = string.match(log, '([^\n]*)$')
    if string.sub(last, 1, #head) == head then return end
    log = log .. '\n' .. e
    local _, n = string.gsub(log, '\n', '')
    while n >= 20 do -- MaxAttemptLog
      log = string.sub(log, string.find(log, '\n', 1, true) + 1)
      n = n - 1
    end
  else
    log = e
  end
  redis.call('HSET', rec, 'log', log)
end
`

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
	// Number is the attempt's number (it starts again at 1 after a requeue).
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
