package remote

import (
	"strings"
	"unicode/utf8"
)

// CleanText makes what the VM said safe to show in a terminal: escape sequences
// (colors, but also those that move the cursor, retitle the window, rewrite what
// is on the screen or talk to the terminal), other control characters and
// carriage returns are dropped; tabs and newlines stay. Anything the VM prints
// can be written by whoever controls a log file there.
func CleanText(s string) string {
	if isPlain(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(len(s))
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '\t' || r == '\n':
			b.WriteRune(r)
		case r == 0x1b: // ESC
			i = skipEscape(rs, i+1)
		case r == 0x9b: // CSI in its 8-bit form
			i = skipCSI(rs, i+1)
		case r == 0x90 || r == 0x98 || r == 0x9d || r == 0x9e || r == 0x9f: // DCS, SOS, OSC, PM, APC
			i = skipString(rs, i+1)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			// other controls, \r included: dropped
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isPlain: printable ASCII, tabs and newlines only (the common case, no copy).
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || c == 0x7f || (c < 0x20 && c != '\t' && c != '\n') {
			return false
		}
	}
	return true
}

// skipEscape returns the index of the last rune of the sequence whose ESC was
// just before i.
func skipEscape(rs []rune, i int) int {
	if i >= len(rs) {
		return i
	}
	switch rs[i] {
	case '[':
		return skipCSI(rs, i+1)
	case ']', 'P', 'X', '^', '_':
		return skipString(rs, i+1)
	}
	// ESC, intermediates (0x20-0x2f), one final character.
	for i < len(rs) && rs[i] >= 0x20 && rs[i] <= 0x2f {
		i++
	}
	return i
}

// skipCSI skips parameters and intermediates up to the final byte (0x40-0x7e).
func skipCSI(rs []rune, i int) int {
	for ; i < len(rs); i++ {
		if rs[i] >= 0x40 && rs[i] <= 0x7e {
			return i
		}
		if rs[i] < 0x20 || rs[i] > 0x7e {
			return i - 1 // not a sequence after all: resume at this rune
		}
	}
	return i
}

// skipString skips a control string up to its terminator: BEL, ESC \ or ST.
func skipString(rs []rune, i int) int {
	for ; i < len(rs); i++ {
		switch rs[i] {
		case 0x07, 0x9c:
			return i
		case 0x1b:
			if i+1 < len(rs) && rs[i+1] == '\\' {
				return i + 1
			}
		case '\n':
			return i - 1 // unterminated: keep the line break
		}
	}
	return i
}
