package main

import (
	"strings"
	"unicode"
)

// terminalSafe removes what a terminal would act on instead of print:
// control characters (ESC sequences that recolour, retitle or move the
// cursor, carriage returns that overwrite a line, C1 controls) and Unicode
// bidirectional controls (which reorder what is shown). The texts of
// WAHA's answers reach the human output of status, dlq list and batch, and
// WAHA may send anything. Line breaks and tabs stay: callers that need one
// line fold them (oneLine). Invalid UTF-8 is dropped. JSON output is left alone: its encoder escapes
// control characters.
func terminalSafe(s string) string {
	// Bytes that are not UTF-8 go too: in a terminal's 8-bit mode a lone
	// 0x9b byte is a control sequence introducer.
	s = strings.ToValidUTF8(s, "")
	drop := func(r rune) bool {
		return (unicode.IsControl(r) && r != '\n' && r != '\t') || unicode.Is(unicode.Bidi_Control, r)
	}
	if strings.IndexFunc(s, drop) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if drop(r) {
			return -1
		}
		return r
	}, s)
}
