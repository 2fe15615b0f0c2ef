package ui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
)

// failedPage shows a failure: of the preflight (before anything changed) or of
// a step, with the error, the hint and the log's last lines; retry, skip where
// safe, back to the settings after a preflight, or quit.
type failedPage struct {
	data          *runData
	err           error
	hint          string
	last          []string
	canBack       bool // esc goes back to the settings (a preflight failure)
	body          viewport.Model
	width, height int
}

func newFailedPage(d *runData) failedPage { return failedPage{data: d, body: viewport.New()} }

func (p *failedPage) step() bool { return p.data.failed >= 0 && p.data.failed < len(p.data.rows) }

func (p *failedPage) skippable() bool {
	return p.step() && skippable(p.data.rows[p.data.failed].step)
}

func (p *failedPage) keys() []key.Binding {
	var out []key.Binding
	if p.skippable() {
		out = append(out, keys.Skip)
	}
	if p.step() {
		out = append(out, keys.Retry)
	}
	if p.canBack {
		out = append(out, keys.Back)
	}
	return append(out, keys.Quit)
}

func (p *failedPage) SetSize(w, h int) {
	p.width, p.height = w, h
	p.body.SetWidth(w)
	p.body.SetHeight(max(h-1, 1))
	p.fill()
}

func (p *failedPage) fill() {
	if p.err == nil {
		return
	}
	var b strings.Builder
	if p.step() {
		b.WriteString(p.data.list(false, -1, " ", p.width, max(3, (p.height-1)/4)))
		fmt.Fprintf(&b, "\n%s %s\n", failStyle.Render("✗ Failed:"), titleStyle.Render(p.data.rows[p.data.failed].step.Title()))
	} else {
		fmt.Fprintf(&b, "%s\n", failStyle.Render("✗ Before anything changed:"))
	}
	b.WriteString(wrap(p.err.Error(), p.width) + "\n")
	if p.hint != "" {
		b.WriteString(wrap(warnStyle.Render("hint: ")+p.hint, p.width) + "\n")
	}
	if len(p.last) > 0 {
		b.WriteString(dimStyle.Render("last lines:") + "\n")
		for _, l := range p.last {
			b.WriteString(wrap(l, p.width) + "\n")
		}
	}
	if p.step() {
		b.WriteString(dimStyle.Render(wrap("progress is saved: run vm2mesh again to resume", p.width)) + "\n")
	}
	p.body.SetContent(strings.TrimRight(b.String(), "\n"))
	p.body.GotoTop()
}

func (p *failedPage) key(k tea.KeyPressMsg) action {
	switch {
	case key.Matches(k, keys.Retry) && p.step():
		return actRetry
	case key.Matches(k, keys.Skip) && p.skippable():
		return actSkip
	case key.Matches(k, keys.Back) && p.canBack:
		return actBack
	case key.Matches(k, keys.Quit), key.Matches(k, keys.Back):
		return actFail
	default:
		scrollKey(&p.body, k)
	}
	return actNone
}

func (p *failedPage) wheel(up bool) { scroll(&p.body, up) }

func (p *failedPage) View() string {
	return p.body.View() + "\n" + helpLine(p.width, p.keys()...)
}

func skippable(st interface{}) bool {
	s, ok := st.(interface{ Skippable() bool })
	return ok && s.Skippable()
}
