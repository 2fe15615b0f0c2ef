package ui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/vm2mesh/vm2mesh/steps"
)

// planPage shows every step, those done marked, and the selected step's
// manifests and commands in a scrollable pane. Nothing changes before enter.
type planPage struct {
	data          *runData
	cursor        int
	detail        viewport.Model
	where         string // the cluster and the VM the plan is for
	resumeAt      string // the step the last run with these settings stopped at
	canBack       bool   // esc goes back to the settings
	width, height int
}

func newPlanPage(d *runData) planPage { return planPage{data: d, detail: viewport.New()} }

func (p *planPage) keys() []key.Binding {
	out := []key.Binding{keys.Up, keys.PageUp, keys.Apply}
	if p.canBack {
		out = append(out, keys.Back)
	}
	return append(out, keys.Quit)
}

func (p *planPage) head() string {
	head := titleStyle.Render("Plan") + dimStyle.Render(" · nothing changes until you press enter")
	if p.where != "" {
		head += dimStyle.Render(" · " + p.where)
	}
	head = wrap(head, p.width)
	if p.resumeAt != "" {
		head += "\n" + wrap(warnStyle.Render("The last run stopped at "+p.resumeAt+": enter resumes there."), p.width)
	}
	return head
}

// SetSize lays the page out: the head, the list, a rule, the pane, the help.
func (p *planPage) SetSize(w, h int) {
	p.width, p.height = w, h
	_, paneH := split(h, len(p.data.rows), lipgloss.Height(p.head())+2)
	p.detail.SetWidth(w)
	p.detail.SetHeight(paneH)
	p.show()
}

func (p *planPage) key(k tea.KeyPressMsg) action {
	switch {
	case key.Matches(k, keys.Up):
		p.cursor = max(p.cursor-1, 0)
		p.show()
	case key.Matches(k, keys.Down):
		p.cursor = min(p.cursor+1, len(p.data.rows)-1)
		p.show()
	case key.Matches(k, keys.PageDown):
		p.detail.PageDown()
	case key.Matches(k, keys.PageUp):
		p.detail.PageUp()
	case key.Matches(k, keys.Apply):
		return actApply
	case key.Matches(k, keys.Back) && p.canBack:
		return actBack
	case key.Matches(k, keys.Quit), key.Matches(k, keys.Back):
		return actNotApplied
	}
	return actNone
}

func (p *planPage) wheel(up bool) { scroll(&p.detail, up) }

// show puts the selected step's manifests and commands in the pane, wrapped.
func (p *planPage) show() {
	if len(p.data.rows) == 0 {
		return
	}
	r := p.data.rows[min(p.cursor, len(p.data.rows)-1)]
	var b strings.Builder
	if r.skip {
		fmt.Fprintf(&b, "%s\n\n", dimStyle.Render("skipped: "+r.reason))
	} else if r.reason != "" {
		fmt.Fprintf(&b, "%s\n\n", r.reason)
	}
	for _, a := range r.actions {
		switch a.Kind {
		case steps.Manifest:
			fmt.Fprintf(&b, "%s\n%s\n", titleStyle.Render("# "+a.File+" ("+a.Title+")"), a.Body)
		case steps.Command:
			fmt.Fprintf(&b, "%s\n$ %s\n\n", titleStyle.Render("# "+a.Title), steps.ShellJoin(a.Argv))
		case steps.Note:
			fmt.Fprintf(&b, "%s\n\n", a.Body)
		}
	}
	p.detail.SetContent(wrap(strings.TrimRight(b.String(), "\n"), p.width))
	p.detail.GotoTop()
}

func (p *planPage) View() string {
	head := p.head()
	listH, _ := split(p.height, len(p.data.rows), lipgloss.Height(head)+2)
	return head + "\n" + p.data.list(true, p.cursor, "", p.width, listH) + rule(p.width) + "\n" +
		p.detail.View() + "\n" + helpLine(p.width, p.keys()...)
}

// scroll moves a pane three lines for a turn of the mouse wheel.
// scrollKey moves v by a line or a page for the scroll keys; false for any
// other key.
func scrollKey(v *viewport.Model, k tea.KeyPressMsg) bool {
	switch {
	case key.Matches(k, keys.Up):
		v.ScrollUp(1)
	case key.Matches(k, keys.Down):
		v.ScrollDown(1)
	case key.Matches(k, keys.PageUp):
		v.PageUp()
	case key.Matches(k, keys.PageDown):
		v.PageDown()
	default:
		return false
	}
	return true
}

func scroll(v *viewport.Model, up bool) {
	if up {
		v.ScrollUp(3)
	} else {
		v.ScrollDown(3)
	}
}
