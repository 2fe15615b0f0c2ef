package ui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"

	"github.com/vm2mesh/vm2mesh/steps"
)

// summaryPage says what changed where, the files, how to check, how to replay
// the run headless and how to undo it.
type summaryPage struct {
	data          *runData
	settings      steps.Settings
	workDir       string
	answers       string // the saved answers file, "" when it could not be saved
	answersErr    error
	only          string
	body          viewport.Model
	width, height int
}

func newSummaryPage(d *runData) summaryPage { return summaryPage{data: d, body: viewport.New()} }

func (p *summaryPage) keys() []key.Binding {
	return []key.Binding{with(keys.Up, "scroll"), keys.Doctor, keys.Quit}
}

func (p *summaryPage) SetSize(w, h int) {
	p.width, p.height = w, h
	p.body.SetWidth(w)
	p.body.SetHeight(max(h-1, 1))
	p.fill()
}

func (p *summaryPage) fill() {
	var b strings.Builder
	line := func(s string) { b.WriteString(wrap(s, p.width) + "\n") }
	b.WriteString(okStyle.Render("✓ Done") + "\n")
	s := p.settings
	if p.workDir != "" {
		line("files:  " + p.workDir)
	}
	line(fmt.Sprintf("check:  kubectl get workloadentries -n %s", s.Namespace))
	if p.answers != "" {
		line("doctor: d, or vm2mesh doctor -f " + p.answers)
	} else {
		line("doctor: d (read-only checks)")
	}
	if s.VM.Host != "" {
		line("on VM:  curl localhost:15021/healthz/ready; tail /var/log/istio/istio.log")
	}
	only := ""
	if p.only != "" {
		only = " --only " + p.only
	}
	switch {
	case p.answers != "":
		line("replay: vm2mesh apply -f " + p.answers + only)
		line("undo:   vm2mesh remove -f " + p.answers + only)
	case p.answersErr != nil:
		line(warnStyle.Render("the settings were not saved: ") + p.answersErr.Error())
		line(fmt.Sprintf("undo:   kubectl delete workloadgroup %s -n %s; vm2mesh remove -f answers.yaml", s.App, s.Namespace))
	}
	b.WriteString(dimStyle.Render("steps:") + "\n")
	for i, r := range p.data.rows {
		mark, note := okStyle.Render("✓"), p.data.notes[i]
		if p.data.states[i] == stateSkipped {
			mark, note = dimStyle.Render("·"), "skipped: "+note
		}
		note = strings.Join(strings.Fields(note), " ")
		line(mark + " " + r.step.Title() + dimStyle.Render(" — "+note))
	}
	p.body.SetContent(strings.TrimRight(b.String(), "\n"))
}

func (p *summaryPage) key(k tea.KeyPressMsg) action {
	switch {
	case key.Matches(k, keys.Doctor):
		return actDoctor
	case key.Matches(k, keys.Quit), k.String() == "enter", k.String() == "esc":
		return actDone
	default:
		scrollKey(&p.body, k)
	}
	return actNone
}

func (p *summaryPage) wheel(up bool) { scroll(&p.body, up) }

func (p *summaryPage) View() string { return p.body.View() + "\n" + helpLine(p.width, p.keys()...) }
