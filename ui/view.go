package ui

import (
	"errors"
	"fmt"
	"strings"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
)

var (
	errNotApplied    = errors.New("nothing changed: the plan was not applied")
	errPromptAborted = errors.New("aborted at the prompt")
)

func (m *Model) View() tea.View {
	var s string
	switch m.page {
	case pageSettings:
		s = titleStyle.Render("vm2mesh") + dimStyle.Render("  settings · every change is shown before it is made") + "\n" + m.form.huh.View()
	case pagePreparing:
		s = m.spin.View() + " checking the settings, the cluster and the VM…\n"
	case pagePlan:
		s = m.planView()
	case pageRun:
		s = m.runView()
	case pageFailed:
		s = m.failedView()
	case pageSummary:
		s = m.summaryView()
	}
	if m.prompt != nil {
		s += "\n" + m.promptView()
	}
	if m.confirmQuit {
		s += "\n" + warnStyle.Render("Cancel the running step and quit? Progress is saved. [y/N]")
	}
	v := tea.NewView(s)
	v.AltScreen = true
	v.WindowTitle = "vm2mesh"
	return v
}

func (m *Model) stepList(selected int) string {
	var b strings.Builder
	for i, r := range m.rows {
		mark, text, dim := " ", r.step.Title(), false
		switch {
		case m.page == pagePlan && r.skip:
			mark, text, dim = dimStyle.Render("·"), text+" (skip: already done)", true
		case m.page == pagePlan:
			mark = "→"
		case m.states[i] == stateRunning:
			mark = strings.TrimSpace(m.spin.View())
		case m.states[i] == stateDone:
			mark = okStyle.Render("✓")
		case m.states[i] == stateSkipped:
			mark, text, dim = dimStyle.Render("·"), text+" (skipped)", true
		case m.states[i] == stateFailed:
			mark = failStyle.Render("✗")
		}
		cursor := " "
		switch {
		case i == selected:
			cursor, text = selectStyle.Render("›"), selectStyle.Render(text)
		case dim:
			text = dimStyle.Render(text)
		}
		b.WriteString(cursor + mark + " " + text + "\n")
	}
	return b.String()
}

func (m *Model) planView() string {
	head := titleStyle.Render("Plan") + dimStyle.Render(" · nothing changes until you press enter")
	if w := m.where(); w != "" {
		head += dimStyle.Render(" · " + w)
	}
	head = lipgloss.NewStyle().MaxWidth(max(m.width, 20)).Render(head) + "\n"
	if m.resumeAt != "" {
		head += warnStyle.Render("The last run stopped at "+m.resumeAt+": enter resumes there.") + "\n"
	}
	help := helpStyle.Render("↑/↓ step · pgup/pgdn scroll · enter apply · q quit")
	return head + m.stepList(m.cursor) + strings.Repeat("─", max(m.width, 20)) + "\n" + m.detail.View() + "\n" + help
}

func (m *Model) where() string {
	var parts []string
	if m.env != nil && m.env.Client != nil {
		parts = append(parts, "cluster "+m.env.Client.Context)
	}
	if m.env != nil && m.env.VM != nil {
		parts = append(parts, "vm "+m.env.VM.Target.String())
	}
	return strings.Join(parts, ", ")
}

func (m *Model) runView() string {
	s := titleStyle.Render("Running") + "\n" + m.stepList(-1)
	if m.showBar {
		bar := m.bar.View()
		if m.static {
			bar = m.bar.ViewAs(m.barPct)
		}
		s += lipgloss.NewStyle().MaxWidth(max(m.width, 20)).Render(bar+" "+dimStyle.Render(m.barText)) + "\n"
	}
	s += strings.Repeat("─", max(m.width, 20)) + "\n" + m.log.View() + "\n"
	follow := "following"
	if !m.follow {
		follow = "scrolled: end to follow"
	}
	return s + helpStyle.Render("↑/↓ scroll ("+follow+") · esc cancel")
}

func (m *Model) failedView() string {
	var b strings.Builder
	if m.failed >= 0 {
		b.WriteString(m.stepList(-1))
		fmt.Fprintf(&b, "\n%s %s\n", failStyle.Render("✗ Failed:"), titleStyle.Render(m.rows[m.failed].step.Title()))
	} else {
		fmt.Fprintf(&b, "%s\n", failStyle.Render("✗ Before anything changed:"))
	}
	b.WriteString(lipgloss.NewStyle().Width(max(m.width-2, 20)).Render(m.err.Error()) + "\n")
	if m.hint != "" {
		b.WriteString(warnStyle.Render("hint: ") + m.hint + "\n")
	}
	if n := len(m.lines); n > 0 {
		b.WriteString(dimStyle.Render("last lines:") + "\n")
		for _, l := range m.lines[max(n-6, 0):] {
			b.WriteString(l + "\n")
		}
	}
	keys := "q quit (progress is saved: run vm2mesh again to resume)"
	if m.failed >= 0 {
		keys = "r retry · " + keys
		if skippable(m.rows[m.failed].step) {
			keys = "s skip · " + keys
		}
	}
	return b.String() + "\n" + helpStyle.Render(keys)
}

func (m *Model) summaryView() string {
	fit := lipgloss.NewStyle().MaxWidth(max(m.width, 20))
	var b strings.Builder
	b.WriteString(okStyle.Render("✓ Done") + "\n")
	for i, r := range m.rows {
		mark, note := okStyle.Render("✓"), m.notes[i]
		if m.states[i] == stateSkipped {
			mark, note = dimStyle.Render("·"), "skipped: "+note
		}
		note = strings.Join(strings.Fields(note), " ")
		b.WriteString(fit.Render(mark+" "+r.step.Title()+dimStyle.Render(" — "+note)) + "\n")
	}
	s := m.settings
	if m.env != nil {
		b.WriteString(fit.Render("files: "+m.env.WorkDir) + "\n")
	}
	b.WriteString(fit.Render(fmt.Sprintf("check:  kubectl get workloadentries -n %s", s.Namespace)) + "\n")
	b.WriteString(fit.Render("on VM:  curl localhost:15021/healthz/ready; tail /var/log/istio/istio.log") + "\n")
	b.WriteString(fit.Render(fmt.Sprintf("undo:   kubectl delete workloadgroup %s -n %s", s.App, s.Namespace)) + "\n")
	b.WriteString(fit.Render("        on the VM: systemctl disable --now istio; remove istio-sidecar;") + "\n")
	b.WriteString(fit.Render("        restore /etc/hosts.vm2mesh.orig") + "\n")
	return b.String() + helpStyle.Render("q quit")
}

func (m *Model) promptView() string {
	p := m.prompt
	body := titleStyle.Render(p.title) + "\n"
	if p.detail != "" {
		body += p.detail + "\n"
	}
	if p.kind == promptHostKey {
		body += "\n" + helpStyle.Render("y trust and remember · o trust once · n abort")
	} else {
		body += m.secret.View() + "\n" + helpStyle.Render("enter submit · esc abort")
	}
	return boxStyle.Render(body)
}
