package ui

import (
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/vm2mesh/vm2mesh/steps"
)

// stepState is how a step stands on the run screen.
type stepState int

const (
	statePending stepState = iota
	stateRunning
	stateDone
	stateSkipped
	stateFailed
)

type planRow struct {
	step    steps.Step
	skip    bool
	reason  string
	actions []steps.Action
}

// runData is the run the plan, run, failure and summary pages show: the steps
// in order and how each stands. (One VM's run; a fleet's would be one each.)
type runData struct {
	rows   []planRow
	states []stepState
	notes  []string // per step: the done or skip line
	failed int      // the failed step, -1 for none (or the preflight)
}

func (d *runData) setSteps(list []steps.Step) {
	d.rows = d.rows[:0]
	for _, st := range list {
		d.rows = append(d.rows, planRow{step: st})
	}
	d.states = make([]stepState, len(d.rows))
	d.notes = make([]string, len(d.rows))
	d.failed = -1
}

func (d *runData) stepsOf() []steps.Step {
	out := make([]steps.Step, len(d.rows))
	for i, r := range d.rows {
		out[i] = r.step
	}
	return out
}

func (d *runData) index(step string) int {
	for i, r := range d.rows {
		if r.step.Name() == step {
			return i
		}
	}
	return -1
}

// focus is the step a short list keeps in view: the selected one, else the
// running or failed one, else the first pending.
func (d *runData) focus(selected int) int {
	if selected >= 0 {
		return selected
	}
	for i, s := range d.states {
		if s == stateRunning || s == stateFailed {
			return i
		}
	}
	for i, s := range d.states {
		if s == statePending {
			return i
		}
	}
	return len(d.rows) - 1
}

// list is the steps, one line each cut to width, at most height lines: a
// longer list scrolls to keep the focus in view. plan marks what the plan
// would do; otherwise the run's state. spin is the running step's mark.
func (d *runData) list(plan bool, selected int, spin string, width, height int) string {
	first, last := window(len(d.rows), d.focus(selected), height)
	var b strings.Builder
	for i := first; i < last; i++ {
		r := d.rows[i]
		mark, text, dim := " ", r.step.Title(), false
		switch {
		case plan && r.skip:
			mark, text, dim = dimStyle.Render("·"), text+" (skip: already done)", true
		case plan:
			mark = "→"
		case d.states[i] == stateRunning:
			mark = spin
		case d.states[i] == stateDone:
			mark = okStyle.Render("✓")
		case d.states[i] == stateSkipped:
			mark, text, dim = dimStyle.Render("·"), text+" (skipped)", true
		case d.states[i] == stateFailed:
			mark = failStyle.Render("✗")
		}
		if (i == first && first > 0) || (i == last-1 && last < len(d.rows)) {
			mark = dimStyle.Render("⋮") // more above or below
		}
		cursor := " "
		switch {
		case i == selected:
			cursor, text = selectStyle.Render("›"), selectStyle.Render(text)
		case dim:
			text = dimStyle.Render(text)
		}
		b.WriteString(ansi.Truncate(cursor+mark+" "+text, width, "…") + "\n")
	}
	return b.String()
}

// window is the range of n lines, at most height of them, that shows focus.
func window(n, focus, height int) (first, last int) {
	if height <= 0 || n <= height {
		return 0, n
	}
	first = min(max(focus-height/2, 0), n-height)
	return first, first + height
}

// split shares height between a list of rows and a pane below it, beside fixed
// lines: the pane keeps at least 3 lines and the list gives way first.
func split(height, rows, fixed int) (listH, paneH int) {
	const paneMin = 3
	listH = min(rows, max(height-fixed-paneMin, 1))
	return listH, max(height-fixed-listH, 1)
}

// wrap breaks s to width, keeping styles.
func wrap(s string, width int) string { return ansi.Wrap(s, max(width, 10), " ") }

func rule(width int) string { return dimStyle.Render(strings.Repeat("─", max(width, 10))) }

// truncate cuts s to width, keeping styles.
func truncate(s string, width int) string { return ansi.Truncate(s, max(width, 10), "…") }
