// Package duration reads the delays people and automations write: Go
// durations ("30m", "1h30m"), the same with a day unit ("7d", "1d12h"), and
// ISO 8601 durations ("PT30M", "P7D", "P1DT2H"), which date libraries such as
// Luxon (n8n) produce. The HTTP API's "in" and the CLI's --in share it, so
// both accept exactly the same text.
package duration

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Day is the length of the "d" unit and of an ISO 8601 day: 24 hours. A
// delay counts elapsed time, so a day across a DST change is still 24 h.
const Day = 24 * time.Hour

// Week is the length of an ISO 8601 week ("P2W"): 7 days.
const Week = 7 * Day

// ErrSyntax marks text that is not a duration in any accepted form.
var ErrSyntax = errors.New("not a duration")

// Parse reads s as a Go duration with an optional "d" unit, or as an ISO
// 8601 duration (PnWnDTnHnMnS, letters in either case, a fraction with '.'
// or ',' on any figure). Years and months are refused: their length
// depends on the date. A leading '-' gives a negative duration; callers
// that need a delay from now refuse it themselves. Errors wrap ErrSyntax.
func Parse(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	neg := false
	if rest, ok := strings.CutPrefix(t, "-"); ok {
		neg, t = true, rest
	} else if rest, ok := strings.CutPrefix(t, "+"); ok {
		t = rest
	}
	var (
		d   time.Duration
		err error
	)
	if len(t) > 0 && (t[0] == 'P' || t[0] == 'p') {
		d, err = parseISO(t[1:])
	} else {
		d, err = parseGo(t)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %w", ErrSyntax, s, err)
	}
	if neg {
		d = -d
	}
	return d, nil
}

// parseGo reads a Go duration whose leading components may be days.
func parseGo(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	var days float64
	// The "d" unit comes first, once ("1d12h", "1.5d"); time.ParseDuration
	// reads the rest.
	if i := strings.IndexAny(s, "dD"); i >= 0 {
		n, err := parseFigure(s[:i])
		if err != nil {
			return 0, err
		}
		days, s = n, s[i+1:]
	}
	var rest time.Duration
	if s != "" {
		var err error
		if rest, err = time.ParseDuration(s); err != nil {
			return 0, errors.New("units are d, h, m, s, ms, us and ns")
		}
		if rest < 0 {
			return 0, errors.New("a sign goes only at the start")
		}
	}
	return sum(rest, days, Day)
}

// parseISO reads what follows the 'P' of an ISO 8601 duration.
func parseISO(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New(`"P" needs at least one figure, e.g. "PT30M"`)
	}
	var (
		total   time.Duration
		inTime  bool
		figures int
		last    = -1 // index in order of the last unit seen
	)
	dateUnits := map[byte]time.Duration{'W': Week, 'D': Day}
	timeUnits := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second}
	order := "WDHMS"
	for s != "" {
		if s[0] == 'T' || s[0] == 't' {
			if inTime {
				return 0, errors.New(`"T" appears twice`)
			}
			inTime, s = true, s[1:]
			if s == "" {
				return 0, errors.New(`"T" needs a figure after it, e.g. "PT30M"`)
			}
			continue
		}
		i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' && r != ',' })
		if i <= 0 {
			return 0, errors.New("expected a number followed by a unit letter")
		}
		n, err := parseFigure(strings.ReplaceAll(s[:i], ",", "."))
		if err != nil {
			return 0, err
		}
		u := s[i] &^ 0x20 // upper case
		s = s[i+1:]
		units := dateUnits
		if inTime {
			units = timeUnits
		}
		unit, ok := units[u]
		if !ok {
			if u == 'Y' || (u == 'M' && !inTime) {
				return 0, errors.New("years and months have no fixed length; use weeks or days (P30D)")
			}
			return 0, fmt.Errorf("unit %q is not allowed here (date part: W, D; after T: H, M, S)", string(u))
		}
		pos := strings.IndexByte(order, u)
		if pos <= last {
			return 0, errors.New("units must come in the order W, D, T, H, M, S, each once")
		}
		last = pos
		if total, err = sum(total, n, unit); err != nil {
			return 0, err
		}
		figures++
	}
	if figures == 0 {
		return 0, errors.New("no figure")
	}
	return total, nil
}

// parseFigure reads a non-negative decimal number.
func parseFigure(s string) (float64, error) {
	if s == "" || strings.ContainsAny(s, "+-eEinfINFxX_") {
		return 0, errors.New("expected a number")
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return 0, errors.New("expected a number")
	}
	return n, nil
}

// maxDuration is the longest time.Duration, about 292 years.
const maxDuration = time.Duration(math.MaxInt64)

// sum returns acc + n*unit, or an error when it does not fit a Duration.
func sum(acc time.Duration, n float64, unit time.Duration) (time.Duration, error) {
	f := n * float64(unit)
	if f >= float64(maxDuration-acc) {
		return 0, errors.New("too long (at most about 292 years)")
	}
	return acc + time.Duration(f), nil
}
