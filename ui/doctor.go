package ui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/vm2mesh/vm2mesh/steps"
)

// doctorPage shows doctor's read-only checks (steps.Doctor, the engine of
// `vm2mesh doctor`) as they complete: ✓, ✗ or ! with what each found, a hint
// under a failure, the running check's spinner and those still to come.
type doctorPage struct {
	names         []string
	results       []steps.CheckResult
	running       bool
	shown         bool  // the first failure was scrolled into view
	follow        bool  // keep the running check in view (until scrolled)
	runLine       int   // the running check's line
	err           error // doctor could not check at all, or was interrupted
	where         string
	canBack       bool // esc goes back to the page doctor was opened from
	report        bool // `vm2mesh doctor` in a terminal: inline, no keys but q
	body          viewport.Model
	width, height int
}

func newDoctorPage() doctorPage {
	return doctorPage{names: steps.DoctorCheckNames(), body: viewport.New()}
}

// start clears the page for a new run of the checks.
func (p *doctorPage) start() {
	p.results, p.running, p.err, p.shown, p.follow = nil, true, nil, false, true
	p.fill("")
}

func (p *doctorPage) add(r steps.CheckResult) { p.results = append(p.results, r) }

func (p *doctorPage) keys() []key.Binding {
	out := []key.Binding{with(keys.Up, "scroll")}
	if !p.running {
		out = append(out, keys.Rerun)
	}
	if p.canBack {
		out = append(out, with(keys.Back, "back"))
	}
	return append(out, keys.Quit)
}

func (p *doctorPage) SetSize(w, h int) {
	p.width, p.height = w, h
	p.body.SetWidth(w)
	p.body.SetHeight(max(h-3, 1))
}

// counts is the tally line, once the checks are done.
func (p *doctorPage) counts() string {
	n := map[steps.CheckStatus]int{}
	for _, r := range p.results {
		n[r.Status]++
	}
	return fmt.Sprintf("doctor: %d ok, %d failed, %d warnings, %d skipped",
		n[steps.CheckOK], n[steps.CheckFail], n[steps.CheckWarn], n[steps.CheckSkip])
}

// Failed says whether a check failed (warnings do not fail).
func (p *doctorPage) Failed() int {
	n := 0
	for _, r := range p.results {
		if r.Status == steps.CheckFail {
			n++
		}
	}
	return n
}

var checkMarks = map[steps.CheckStatus]func() string{
	steps.CheckOK:   func() string { return okStyle.Render("✓") },
	steps.CheckFail: func() string { return failStyle.Render("✗") },
	steps.CheckWarn: func() string { return warnStyle.Render("!") },
	steps.CheckSkip: func() string { return dimStyle.Render("-") },
}

// lines are the checks as text: those done, the running one, those to come.
func (p *doctorPage) lines(spin string) string {
	var b strings.Builder
	section := ""
	for i, name := range p.names {
		sec := steps.SectionCluster
		if strings.HasPrefix(name, "vm-") {
			sec = steps.SectionVM
		}
		if i < len(p.results) {
			sec = p.results[i].Section
		}
		if sec != section {
			section = sec
			b.WriteString(titleStyle.Render(section+":") + "\n")
		}
		switch {
		case i < len(p.results):
			r := p.results[i]
			found := r.Found
			if r.Status == steps.CheckSkip {
				found = "skipped: " + found
			}
			text := r.Name + ": " + found
			if r.Status == steps.CheckSkip {
				text = dimStyle.Render(text)
			}
			b.WriteString(indent(wrap(" "+checkMarks[r.Status]()+" "+text, p.width), "   ") + "\n")
			if r.Hint != "" && (r.Status == steps.CheckFail || r.Status == steps.CheckWarn) {
				b.WriteString(indent(wrap("   "+warnStyle.Render("hint: ")+r.Hint, p.width), "   ") + "\n")
			}
		case i == len(p.results) && p.running:
			p.runLine = strings.Count(b.String(), "\n")
			b.WriteString(" " + spin + " " + name + dimStyle.Render(" …") + "\n")
		default:
			b.WriteString(dimStyle.Render(" · "+name) + "\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// indent indents the continuation lines of a wrapped line.
func indent(s, pad string) string { return strings.ReplaceAll(s, "\n", "\n"+pad) }

// fill puts the checks in the pane, keeping the running one in view.
func (p *doctorPage) fill(spin string) {
	p.body.SetContent(p.lines(spin))
	switch {
	case p.running && p.follow:
		p.body.SetYOffset(max(p.runLine-p.body.Height()+2, 0))
	case !p.running && !p.shown:
		// Done: the first failure (else warning) in view, once.
		p.shown = true
		for _, st := range []steps.CheckStatus{steps.CheckFail, steps.CheckWarn} {
			if i := p.lineOf(st); i >= 0 {
				p.body.SetYOffset(i - 1)
				break
			}
		}
	}
}

// lineOf is the line of the first check with status st, or -1.
func (p *doctorPage) lineOf(st steps.CheckStatus) int {
	for i, l := range strings.Split(ansi.Strip(p.lines(" ")), "\n") {
		if mark := checkMarks[st](); strings.HasPrefix(l, " "+ansi.Strip(mark)+" ") {
			return i
		}
	}
	return -1
}

func (p *doctorPage) key(k tea.KeyPressMsg) action {
	switch {
	case key.Matches(k, keys.Rerun) && !p.running:
		return actDoctor
	case key.Matches(k, keys.Back) && p.canBack:
		return actDoctorBack
	case key.Matches(k, keys.Quit) && p.running:
		return actCancelRun // stop the checks: 130, not a report of some of them
	case key.Matches(k, keys.Quit):
		return actDone
	case key.Matches(k, keys.Up):
		p.follow = false
		p.body.ScrollUp(1)
	case key.Matches(k, keys.Down):
		p.body.ScrollDown(1)
	case key.Matches(k, keys.PageUp):
		p.follow = false
		p.body.PageUp()
	case key.Matches(k, keys.PageDown):
		p.body.PageDown()
	}
	return actNone
}

func (p *doctorPage) wheel(up bool) {
	p.follow = p.follow && !up
	scroll(&p.body, up)
}

func (p *doctorPage) head() string {
	head := titleStyle.Render("Doctor") + dimStyle.Render(" · read-only checks: nothing changes")
	if p.where != "" {
		head += dimStyle.Render(" · " + p.where)
	}
	return truncate(head, p.width)
}

func (p *doctorPage) foot() string {
	switch {
	case p.running:
		return dimStyle.Render(fmt.Sprintf("checking: %d of %d", len(p.results)+1, len(p.names)))
	case p.err != nil:
		return failStyle.Render(truncate(p.err.Error(), p.width))
	}
	style := okStyle
	if p.Failed() > 0 {
		style = failStyle
	}
	return style.Render(p.counts())
}

func (p *doctorPage) View(spin string) string {
	if p.report && !p.running {
		// The live area goes; RunDoctor prints the report after the program,
		// where the terminal scrolls it (a frame taller than the terminal
		// would lose its top).
		return ""
	}
	p.fill(spin)
	return p.head() + "\n" + p.body.View() + "\n" + p.foot() + "\n" + helpLine(p.width, p.keys()...)
}

// RunDoctor shows doctor's checks live in a terminal (`vm2mesh doctor -o text`
// with stdin and stdout a terminal): the doctor page, inline, ending when the
// checks end and leaving them on the screen. Passwords are asked in a dialog.
// The error is doctor's own (settings it cannot check at all) or
// context.Canceled for Ctrl+C; failing checks are results.
func RunDoctor(ctx context.Context, in, out *os.File, e Engine, s steps.Settings) ([]steps.CheckResult, error) {
	m := New(ctx, e, s, Options{Doctor: true})
	_, err := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out)).Run()
	if d := &m.doctorPage; d.report && !d.running && len(d.results) > 0 {
		fmt.Fprint(out, d.head()+"\n"+d.lines("")+"\n")
	}
	switch {
	case errors.Is(err, tea.ErrProgramKilled):
		return m.Results(), context.Canceled
	case err != nil:
		return nil, err
	case m.Outcome != nil && !IsDoctorFailure(m.Outcome):
		return m.Results(), m.Outcome
	}
	if m.doctorPage.err != nil && len(m.Results()) == 0 {
		return nil, m.doctorPage.err
	}
	return m.Results(), m.doctorPage.err
}
