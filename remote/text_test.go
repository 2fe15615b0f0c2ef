package remote_test

import (
	"testing"

	"github.com/vm2mesh/vm2mesh/remote"
)

func TestCleanTextDropsWhatATerminalWouldObey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain line\twith a tab\n", "plain line\twith a tab\n"},
		{"\x1b[31merror\x1b[0m: failed", "error: failed"},
		{"\x1b]0;owned title\x07after", "after"},
		{"\x1b]8;;http://example.invalid\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"secret\rfake success", "secretfake success"},
		{"\x1b[2J\x1b[Hclear screen", "clear screen"},
		{"\x1bP+q544e\x1b\\ask the terminal", "ask the terminal"},
		{"\u009b31mC1 CSI", "C1 CSI"},
		{"\x9b raw byte", "\uFFFD raw byte"},
		{"bell\x07 backspace\x08 nul\x00 del\x7f", "bell backspace nul del"},
		{"\x1b(Bcharset", "charset"},
		{"unterminated \x1b]0;title\nnext line", "unterminated \nnext line"},
		{"bad utf8 \xff\xfe", "bad utf8 \uFFFD"},
		{"ünïcödé stays", "ünïcödé stays"},
		{"\x1b[", ""},
	} {
		if got := remote.CleanText(tc.in); got != tc.want {
			t.Errorf("CleanText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
