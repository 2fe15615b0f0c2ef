package ui

import (
	"errors"
	"fmt"
	"strings"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/vm2mesh/vm2mesh/vmconfig"
)

var (
	errNotApplied    = errors.New("nothing changed: the plan was not applied")
	errPromptAborted = errors.New("aborted at the prompt")
)

func (m *Model) View() tea.View {
	var s string
	switch m.page {
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
		mark, title := "  ", r.step.Title()
		switch {
		case m.page == pagePlan && r.skip:
			mark, title = dimStyle.Render(" ·"), dimStyle.Render(title+" (skip: already done)")
		case m.page == pagePlan:
			mark = " →"
		case m.states[i] == stateRunning:
			mark = m.spin.View() + " "
		case m.states[i] == stateDone:
			mark = okStyle.Render(" ✓")
		case m.states[i] == stateSkipped:
			mark, title = dimStyle.Render(" ·"), dimStyle.Render(title+" (skipped)")
		case m.states[i] == stateFailed:
			mark = failStyle.Render(" ✗")
		}
		line := mark + " " + title
		if i == selected {
			line = selectStyle.Render("›") + line[1:]
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

func (m *Model) planView() string {
	head := titleStyle.Render("Plan") + dimStyle.Render(fmt.Sprintf("  %s · nothing changes until you press enter", m.where())) + "\n"
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
		s += m.bar.View() + " " + dimStyle.Render(m.barText) + "\n"
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
	var b strings.Builder
	b.WriteString(okStyle.Render("✓ Done") + "\n\n")
	for i, r := range m.rows {
		note := m.notes[i]
		if m.states[i] == stateSkipped {
			note = dimStyle.Render("skipped: " + note)
		}
		fmt.Fprintf(&b, "%s %s\n    %s\n", okStyle.Render("•"), r.step.Title(), note)
	}
	s := m.settings
	if m.env != nil {
		fmt.Fprintf(&b, "\nfiles in %s: %s\n", m.env.WorkDir, strings.Join(vmconfig.FileNames, ", "))
	}
	fmt.Fprintf(&b, "\ncheck from the cluster:  kubectl get workloadentries -n %s\n", s.Namespace)
	b.WriteString("check on the VM:         curl localhost:15021/healthz/ready; tail /var/log/istio/istio.log\n")
	fmt.Fprintf(&b, "undo on the VM:          systemctl disable --now istio; remove istio-sidecar; restore /etc/hosts.vm2mesh.orig\n")
	fmt.Fprintf(&b, "undo in the cluster:     kubectl delete workloadgroup %s -n %s\n", s.App, s.Namespace)
	return b.String() + "\n" + helpStyle.Render("q quit")
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
