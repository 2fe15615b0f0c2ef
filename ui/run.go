package ui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/progress"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/vm2mesh/vm2mesh/steps"
)

// runPage shows the run: a spinner on the running step, ✓ and skipped marks,
// upload progress, and the log following its tail unless scrolled up.
type runPage struct {
	data          *runData
	log           viewport.Model
	lines         []string // the log as it came, wrapped when shown
	follow        bool     // the log follows new lines unless scrolled up
	bar           progress.Model
	showBar       bool
	barText       string
	barPct        float64
	barFrom       time.Time // when the current transfer started, for its rate
	static        bool
	confirm       bool // asking whether to cancel
	width, height int
}

func newRunPage(d *runData, static bool) runPage {
	return runPage{data: d, log: viewport.New(), follow: true, static: static, bar: progress.New(progress.WithWidth(40))}
}

func (p *runPage) fixed() int {
	n := 3 // the head, the rule, the help
	if p.showBar {
		n++
	}
	return n
}

func (p *runPage) SetSize(w, h int) {
	p.width, p.height = w, h
	_, logH := split(h, len(p.data.rows), p.fixed())
	p.log.SetWidth(w)
	p.log.SetHeight(logH)
	p.bar.SetWidth(min(w/3, 40))
	p.relog()
}

// relog puts the lines in the pane, each wrapped to the width.
func (p *runPage) relog() {
	wrapped := make([]string, 0, len(p.lines))
	for _, l := range p.lines {
		wrapped = append(wrapped, strings.Split(wrap(l, p.width), "\n")...)
	}
	p.log.SetContentLines(wrapped)
	if p.follow {
		p.log.GotoBottom()
	}
}

func (p *runPage) appendLog(line string) {
	p.lines = append(p.lines, line)
	if len(p.lines) > 2000 {
		p.lines = p.lines[len(p.lines)-2000:]
	}
	p.relog()
}

// lastLines are the log's last n lines, for the failure page.
func (p *runPage) lastLines(n int) []string { return p.lines[max(len(p.lines)-n, 0):] }

func (p *runPage) event(e steps.Event) {
	i := p.data.index(e.Step)
	if i < 0 {
		return
	}
	bar := p.showBar
	switch e.Kind {
	case steps.Started:
		p.data.states[i] = stateRunning
		p.appendLog(titleStyle.Render("→ " + e.Title))
	case steps.Log:
		p.appendLog("  " + highlight(e.Text))
	case steps.Warning:
		p.appendLog("  " + warnStyle.Render("! "+e.Text))
	case steps.Progress:
		if !p.showBar || e.Cur == 0 {
			p.barFrom = e.Time
		}
		p.showBar = e.Cur < e.Total
		p.barText = fmt.Sprintf("%s %s/%s", e.Text, size(e.Cur), size(e.Total))
		if d := e.Time.Sub(p.barFrom); d > 200*time.Millisecond && !p.static {
			p.barText += fmt.Sprintf(" %s/s", size(int64(float64(e.Cur)/d.Seconds())))
		}
	case steps.Done:
		p.data.states[i], p.data.notes[i] = stateDone, e.Text
	case steps.Skipped:
		p.data.states[i], p.data.notes[i] = stateSkipped, e.Text
	case steps.Failed:
		p.data.states[i], p.data.failed = stateFailed, i
		p.appendLog("  " + failStyle.Render("✗ "+e.Text))
	}
	if bar != p.showBar {
		p.SetSize(p.width, p.height)
	}
}

func (p *runPage) barCmd(e steps.Event) tea.Cmd {
	if e.Kind != steps.Progress || e.Total <= 0 {
		return nil
	}
	p.barPct = float64(e.Cur) / float64(e.Total)
	if p.static {
		return nil
	}
	return p.bar.SetPercent(p.barPct)
}

func (p *runPage) keys() []key.Binding {
	follow := "following"
	if !p.follow {
		follow = "scrolled"
	}
	return []key.Binding{with(keys.Up, "scroll ("+follow+")"), keys.End, keys.Cancel}
}

func (p *runPage) key(k tea.KeyPressMsg) action {
	if p.confirm {
		p.confirm = false
		if key.Matches(k, keys.Yes) {
			return actCancelRun
		}
		return actNone
	}
	switch {
	case key.Matches(k, keys.Cancel):
		p.confirm = true
	case key.Matches(k, keys.Up):
		p.follow = false
		p.log.ScrollUp(1)
	case key.Matches(k, keys.PageUp):
		p.follow = false
		p.log.PageUp()
	case key.Matches(k, keys.Down):
		p.log.ScrollDown(1)
		p.follow = p.log.AtBottom()
	case key.Matches(k, keys.PageDown):
		p.log.PageDown()
		p.follow = p.log.AtBottom()
	case key.Matches(k, keys.End):
		p.follow = true
		p.log.GotoBottom()
	}
	return actNone
}

func (p *runPage) wheel(up bool) {
	scroll(&p.log, up)
	p.follow = p.log.AtBottom()
}

func (p *runPage) View(spin string) string {
	listH, _ := split(p.height, len(p.data.rows), p.fixed())
	s := titleStyle.Render("Running") + "\n" + p.data.list(false, -1, spin, p.width, listH)
	if p.showBar {
		bar := p.bar.View()
		if p.static {
			bar = p.bar.ViewAs(p.barPct)
		}
		s += ansi.Truncate(bar+" "+dimStyle.Render(p.barText), p.width, "…") + "\n"
	}
	s += rule(p.width) + "\n" + p.log.View() + "\n"
	if p.confirm {
		return s + warnStyle.Render(ansi.Truncate("Cancel the running step and quit? Progress is saved. [y/N]", p.width, "…"))
	}
	return s + helpLine(p.width, p.keys()...)
}

// highlight marks the agent's success and failure lines, as the verify step
// judges them.
func highlight(line string) string {
	switch steps.Judge(line) {
	case steps.Joined:
		return okStyle.Render(line)
	case steps.AgentFailed:
		return failStyle.Render(line)
	}
	return line
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
