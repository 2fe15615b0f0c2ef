package ui

import (
	"context"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/vm2mesh/vm2mesh/remote"
	"github.com/vm2mesh/vm2mesh/steps"
)

// Fleet is a fleet run as the wizard drives it: steps.FleetRun, prepared
// (logged in to its VMs). Status is read at any time; Retry runs one VM again
// while the others go on.
type Fleet interface {
	Status() []steps.VMStatus
	Run(ctx context.Context) []steps.VMStatus
	Retry(ctx context.Context, name string) error
	Close()
}

// FleetHooks are how a fleet run reaches the wizard: the prompts (one at a
// time), the VMs' unknown host keys (side by side, for one dialog) and the
// events of every VM and group.
type FleetHooks struct {
	Prompts  steps.Prompts
	HostKeys func(steps.HostKeyQuestion) (remote.HostKeyDecision, error)
	Emit     func(steps.FleetEvent)
}

// FleetEngine is an Engine that runs fleets (vms: answers files).
type FleetEngine interface {
	PrepareFleet(ctx context.Context, f steps.Fleet, h FleetHooks) (Fleet, error)
}

// PrepareFleet checks the fleet locally, reads the cluster and logs in to
// every VM that will run, Parallel at a time.
func (e RealEngine) PrepareFleet(ctx context.Context, f steps.Fleet, h FleetHooks) (Fleet, error) {
	run := &steps.FleetRun{Fleet: f, Only: e.Only, Parallel: e.Parallel, K8s: e.options(), Prompts: h.Prompts, HostKeys: h.HostKeys, Emit: h.Emit}
	if _, err := run.Check(); err != nil {
		return nil, err
	}
	if err := run.Prepare(ctx); err != nil {
		run.Close()
		return nil, err
	}
	return run, nil
}

// Messages of a fleet run.
type (
	fleetPreparedMsg struct {
		fleet Fleet
		err   error
	}
	fleetEventMsg steps.FleetEvent
	// fleetEndedMsg: the run, or a retry, ended.
	fleetEndedMsg struct{ retry string }
)

// fleetPage is a fleet's run: a table of VMs (each with its step, a progress
// bar and its verdict) and the selected VM's log below it. Before the run it
// is the plan (enter applies); a failed VM is retried from the table while
// the others go on.
type fleetPage struct {
	status        []steps.VMStatus
	logs          map[string][]string
	failShown     map[string]bool // the VM's log has its failure (else it is added under it)
	selected      int
	chosen        bool   // the operator picked a VM; otherwise the selection follows the run
	planned       bool   // the plan: nothing has run yet
	canBack       bool   // esc on the plan goes back to the settings (they made the fleet)
	replay        string // where the settings that made the fleet were saved
	busy          int    // the run and the retries going on
	parallel      int
	log           viewport.Model
	follow        bool
	confirm       bool
	width, height int
}

func newFleetPage(parallel int) fleetPage {
	if parallel <= 0 {
		parallel = steps.DefaultParallel
	}
	return fleetPage{parallel: parallel, logs: map[string][]string{}, failShown: map[string]bool{}, log: viewport.New(), follow: true, planned: true}
}

// fixed: the head, the rule, the help, and the replay line once there is one.
func (p *fleetPage) fixed() int {
	if p.replay != "" {
		return 4
	}
	return 3
}

func (p *fleetPage) SetSize(w, h int) {
	p.width, p.height = w, h
	_, logH := split(h, len(p.status), p.fixed())
	p.log.SetWidth(w)
	p.log.SetHeight(logH)
	p.relog()
}

func (p *fleetPage) setStatus(st []steps.VMStatus) {
	n := len(p.status)
	p.status = st
	if !p.chosen {
		p.selected = p.autoSelect()
	}
	p.selected = min(max(p.selected, 0), max(len(st)-1, 0))
	if n != len(st) {
		p.SetSize(p.width, p.height)
		return
	}
	p.relog()
}

// autoSelect is the VM to show until the operator picks one: the first
// failed, else the first running, else the first.
func (p *fleetPage) autoSelect() int {
	for _, want := range []steps.VMState{steps.VMFailed, steps.VMRunning} {
		for i, s := range p.status {
			if s.State == want {
				return i
			}
		}
	}
	return 0
}

func (p *fleetPage) current() (steps.VMStatus, bool) {
	if p.selected < 0 || p.selected >= len(p.status) {
		return steps.VMStatus{}, false
	}
	return p.status[p.selected], true
}

func (p *fleetPage) relog() {
	st, ok := p.current()
	if !ok {
		p.log.SetContentLines(nil)
		return
	}
	var wrapped []string
	for _, l := range p.logs[st.Name] {
		wrapped = append(wrapped, strings.Split(wrap(l, p.width), "\n")...)
	}
	if st.State == steps.VMFailed && st.Err != nil {
		if !p.failShown[st.Name] {
			wrapped = append(wrapped, strings.Split(wrap(failStyle.Render("✗ "+remote.CleanText(st.Err.Error())), p.width), "\n")...)
		}
		if st.Hint != "" {
			wrapped = append(wrapped, strings.Split(wrap(dimStyle.Render("  fix: "+remote.CleanText(st.Hint)), p.width), "\n")...)
		}
	}
	p.log.SetContentLines(wrapped)
	if p.follow {
		p.log.GotoBottom()
	}
}

func (p *fleetPage) appendLog(vm, line string) {
	l := append(p.logs[vm], line)
	if len(l) > 2000 {
		l = l[len(l)-2000:]
	}
	p.logs[vm] = l
}

// event adds a VM's event to its log; a group's goes to each of its VMs'.
func (p *fleetPage) event(e steps.FleetEvent) {
	var line string
	switch e.Kind {
	case steps.Started:
		line = titleStyle.Render("→ " + e.Title)
	case steps.Log:
		line = "  " + highlight(e.Text)
	case steps.Warning:
		line = "  " + warnStyle.Render("! "+e.Text)
	case steps.Done:
		line = "  " + okStyle.Render("✓ ") + e.Text
	case steps.Skipped:
		line = "  " + dimStyle.Render("· "+e.Title+" (skipped)")
	case steps.Failed:
		if e.Step == steps.ConnectStep {
			return // the status says it, with its hint, below the log
		}
		line = "  " + failStyle.Render("✗ "+e.Text)
		p.failShown[e.VM] = true
	default:
		return
	}
	if e.VM != "" {
		p.appendLog(e.VM, line)
		return
	}
	for _, s := range p.status {
		if s.Group == e.Group {
			p.appendLog(s.Name, dimStyle.Render("group "+e.Group.String()+" ")+line)
		}
	}
}

func (p *fleetPage) finished() bool { return !p.planned && p.busy == 0 }

func (p *fleetPage) count(states ...steps.VMState) int {
	n := 0
	for _, s := range p.status {
		for _, want := range states {
			if s.State == want {
				n++
			}
		}
	}
	return n
}

func (p *fleetPage) head() string {
	n := len(p.status)
	vms := fmt.Sprintf("%d VMs", n)
	if n == 1 {
		vms = "1 VM"
	}
	done, failed := p.count(steps.VMDone, steps.VMDoneBefore), p.count(steps.VMFailed, steps.VMInterrupted)
	switch {
	case p.planned:
		return titleStyle.Render("Plan") + dimStyle.Render(fmt.Sprintf(" · a fleet of %s, %d at a time", vms, p.parallel))
	case p.finished() && failed == 0:
		return okStyle.Render("✓ Done") + fmt.Sprintf(": all %s are in the mesh", vms)
	case p.finished():
		return failStyle.Render("✗ Failed") + fmt.Sprintf(": %d of %s in the mesh, %d failed", done, vms, failed)
	}
	return titleStyle.Render("Running") + dimStyle.Render(fmt.Sprintf(" · %d of %s done, %d running, %d failed", done, vms, p.count(steps.VMRunning), failed))
}

// row is one VM's line of the table.
func (p *fleetPage) row(i int, s steps.VMStatus, nameW int, spin string) string {
	mark, verdict, vstyle := dimStyle.Render("·"), "waiting", dimStyle
	switch s.State {
	case steps.VMRunning:
		mark, verdict, vstyle = spin, "running", titleStyle
	case steps.VMDone:
		mark, verdict, vstyle = okStyle.Render("✓"), "done", okStyle
	case steps.VMDoneBefore:
		mark, verdict, vstyle = okStyle.Render("✓"), "done", dimStyle
	case steps.VMFailed:
		mark, verdict, vstyle = failStyle.Render("✗"), "failed", failStyle
	case steps.VMInterrupted:
		mark, verdict, vstyle = warnStyle.Render("!"), "stopped", warnStyle
	}
	title := s.Title
	if title == "" {
		title = "not started"
		if p.planned && s.State == steps.VMPending {
			title = "logged in, to run"
		}
	}
	const barW = 10
	filled := 0
	if s.Steps > 0 {
		filled = barW * s.StepIndex / s.Steps
		if s.State == steps.VMRunning || s.State == steps.VMFailed || s.State == steps.VMInterrupted {
			filled = barW * max(s.StepIndex-1, 0) / s.Steps // the step at hand is not done
		}
		if s.State == steps.VMDone || s.State == steps.VMDoneBefore {
			filled = barW
		}
	}
	bar := okStyle.Render(strings.Repeat("█", filled)) + dimStyle.Render(strings.Repeat("░", barW-filled))
	count := fmt.Sprintf("%2d/%-2d", s.StepIndex, s.Steps)
	// cursor, mark, name, count, title, bar, verdict
	titleW := max(p.width-(2+1+nameW+1+len(count)+1+1+barW+1+7), 4)
	cursor, name := " ", fmt.Sprintf("%-*s", nameW, ansi.Truncate(s.Name, nameW, "…"))
	if i == p.selected {
		cursor, name = selectStyle.Render("›"), selectStyle.Render(name)
	}
	line := cursor + mark + " " + name + " " + dimStyle.Render(count) + " " +
		ansi.Truncate(fmt.Sprintf("%-*s", titleW, title), titleW, "…") + " " + bar + " " + vstyle.Render(verdict)
	return ansi.Truncate(line, p.width, "…")
}

func (p *fleetPage) table(spin string, height int) string {
	nameW := 2
	for _, s := range p.status {
		nameW = max(nameW, ansi.StringWidth(s.Name))
	}
	nameW = min(nameW, max(p.width/4, 4))
	first, last := window(len(p.status), p.selected, height)
	var b strings.Builder
	for i := first; i < last; i++ {
		line := p.row(i, p.status[i], nameW, spin)
		if (i == first && first > 0) || (i == last-1 && last < len(p.status)) {
			line = ansi.Truncate(" "+dimStyle.Render("⋮")+" "+ansi.Cut(line, 3, p.width), p.width, "…") // more above or below
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

func (p *fleetPage) retryable() bool {
	st, ok := p.current()
	return ok && !p.planned && (st.State == steps.VMFailed || st.State == steps.VMInterrupted)
}

func (p *fleetPage) keys() []key.Binding {
	if p.planned {
		if p.canBack {
			return []key.Binding{with(keys.Up, "VM"), keys.Apply, keys.Back, keys.Quit}
		}
		return []key.Binding{with(keys.Up, "VM"), keys.Apply, keys.Quit}
	}
	out := []key.Binding{with(keys.Up, "VM"), keys.PageUp}
	if p.retryable() {
		out = append(out, keys.Retry)
	}
	if p.finished() {
		return append(out, keys.Quit)
	}
	return append(out, keys.Cancel)
}

// key: actRetry asks the root to retry the selected VM.
func (p *fleetPage) key(k tea.KeyPressMsg) action {
	if p.confirm {
		p.confirm = false
		if key.Matches(k, keys.Yes) {
			return actCancelRun
		}
		return actNone
	}
	switch {
	case key.Matches(k, keys.Up):
		p.chosen, p.follow = true, true
		p.selected = max(p.selected-1, 0)
		p.relog()
	case key.Matches(k, keys.Down):
		p.chosen, p.follow = true, true
		p.selected = min(p.selected+1, max(len(p.status)-1, 0))
		p.relog()
	case key.Matches(k, keys.PageUp):
		p.follow = false
		p.log.PageUp()
	case key.Matches(k, keys.PageDown):
		p.log.PageDown()
		p.follow = p.log.AtBottom()
	case key.Matches(k, keys.End):
		p.follow = true
		p.log.GotoBottom()
	case p.planned && key.Matches(k, keys.Apply):
		return actApply
	case p.planned && key.Matches(k, keys.Quit):
		return actNotApplied
	case p.planned && p.canBack && key.Matches(k, keys.Back):
		return actBack
	case key.Matches(k, keys.Retry) && p.retryable():
		return actRetry
	case p.finished() && key.Matches(k, keys.Quit):
		return actDone
	case !p.finished() && !p.planned && key.Matches(k, keys.Cancel):
		p.confirm = true
	}
	return actNone
}

func (p *fleetPage) wheel(up bool) {
	scroll(&p.log, up)
	p.follow = p.log.AtBottom()
}

func (p *fleetPage) View(spin string) string {
	listH, _ := split(p.height, len(p.status), p.fixed())
	s := truncate(p.head(), p.width) + "\n" + p.table(spin, listH)
	if p.replay != "" {
		s += truncate(dimStyle.Render("replay: vm2mesh apply -f "+p.replay), p.width) + "\n"
	}
	name := ""
	if st, ok := p.current(); ok {
		name = " " + st.Name + " "
	}
	r := rule(p.width)
	if name != "" && p.width > len(name)+4 {
		r = dimStyle.Render("──") + titleStyle.Render(name) + dimStyle.Render(strings.Repeat("─", max(p.width-2-ansi.StringWidth(name), 0)))
	}
	s += r + "\n" + p.log.View() + "\n"
	if p.confirm {
		return s + warnStyle.Render(ansi.Truncate("Cancel the running VMs and quit? Progress is saved. [y/N]", p.width, "…"))
	}
	return s + helpLine(p.width, p.keys()...)
}

// errFleetFailed: the wizard was left with VMs of the fleet not in the mesh.
type errFleetFailed struct{ failed, total int }

func (e errFleetFailed) Error() string {
	return fmt.Sprintf("%d of %d VMs failed; vm2mesh apply (or the wizard) with the same answers resumes each where it stopped", e.failed, e.total)
}

// ask shows a question, or queues it behind the one on screen.
func (m *Model) ask(msg tea.Msg) tea.Cmd {
	if m.hostKeys.isOpen() || m.dialog.prompt != nil {
		m.queued = append(m.queued, msg)
		return nil
	}
	switch msg := msg.(type) {
	case hostKeysMsg:
		m.hostKeys.open(msg)
	case promptMsg:
		return m.dialog.open(msg)
	}
	return nil
}

// next shows the next queued question once the dialog is answered.
func (m *Model) next() tea.Cmd {
	if m.hostKeys.isOpen() || m.dialog.prompt != nil || len(m.queued) == 0 {
		return nil
	}
	msg := m.queued[0]
	m.queued = m.queued[1:]
	return m.ask(msg)
}

// prepareFleet checks the fleet, reads the cluster and logs in to its VMs in
// the background; the VMs' unknown host keys are asked together.
func (m *Model) prepareFleet() {
	b, ctx, tr, f := m.bus, m.ctx, m.trace, *m.opts.Fleet
	fe, ok := m.engine.(FleetEngine)
	if !ok {
		go func() { b <- fleetPreparedMsg{err: fmt.Errorf("this wizard's engine runs no fleets")} }()
		return
	}
	// The run's context, cancelled by esc or Ctrl+C; the logins are part of it.
	runCtx, cancel := context.WithCancel(ctx)
	m.cancel, m.fleetCtx = cancel, runCtx
	hk := &hostKeyBatcher{ctx: runCtx, bus: b, tr: tr}
	hooks := FleetHooks{Prompts: b.prompts(runCtx, tr), HostKeys: hk.ask, Emit: func(e steps.FleetEvent) { b <- fleetEventMsg(e) }}
	tr.printf("preflight of a fleet: context %q, %d VMs, workDir %s", f.Settings.KubeContext, len(f.VMs), f.Settings.WorkDir)
	go func() {
		run, err := fe.PrepareFleet(runCtx, f, hooks)
		if err != nil {
			tr.printf("preflight failed: %v", err)
		}
		b <- fleetPreparedMsg{fleet: run, err: err}
	}()
}

func (m *Model) fleetPrepared(msg fleetPreparedMsg) (tea.Model, tea.Cmd) {
	if m.quitting {
		if msg.fleet != nil {
			msg.fleet.Close()
		}
		m.Outcome = context.Canceled
		return m, tea.Quit
	}
	if msg.err != nil {
		m.cancel = nil
		m.showFailure(msg.err, -1)
		return m, m.bus.listen()
	}
	m.fleet = msg.fleet
	m.page = pageFleet
	m.fleetPage.planned = true
	m.fleetPage.setStatus(m.fleet.Status())
	m.resize()
	return m, m.bus.listen()
}

// fleetDo does what a key of the fleet's page asks.
func (m *Model) fleetDo(a action) (tea.Model, tea.Cmd) {
	p := &m.fleetPage
	switch a {
	case actApply:
		if m.fleetAnswers != nil {
			// The settings that made the fleet, as its answers file: a replay.
			path, err := steps.SaveFleetAnswers(m.fleetAnswers, m.opts.Fleet.Settings.WorkDir)
			if err != nil {
				m.trace.printf("the settings were not saved: %v", err)
			} else {
				p.replay = path
				m.trace.printf("settings saved as %s", path)
				p.SetSize(p.width, p.height)
			}
		}
		p.planned = false
		p.busy++
		run, ctx, b, tr := m.fleet, m.runCtx(), m.bus, m.trace
		go func() {
			sts := run.Run(ctx)
			tr.printf("fleet run ended: %d VMs", len(sts))
			b <- fleetEndedMsg{}
		}()
	case actRetry:
		st, ok := p.current()
		if !ok {
			return m, nil
		}
		p.busy++
		p.appendLog(st.Name, dimStyle.Render("— retrying —"))
		p.failShown[st.Name] = false
		p.chosen = true
		run, ctx, b, tr, name := m.fleet, m.runCtx(), m.bus, m.trace, st.Name
		tr.printf("retry %s", name)
		go func() {
			err := run.Retry(ctx, name)
			tr.printf("retry %s ended: %v", name, err)
			b <- fleetEndedMsg{retry: name}
		}()
		p.setStatus(m.fleet.Status())
	case actNotApplied:
		m.Outcome = errNotApplied
		return m, tea.Quit
	case actBack:
		if m.cancel != nil {
			m.cancel() // the logins' context; nothing runs on the plan
			m.cancel = nil
		}
		return m.backToSettings()
	case actCancelRun:
		return m.interrupt()
	case actDone:
		if n := p.count(steps.VMFailed, steps.VMInterrupted); n > 0 {
			m.Outcome = errFleetFailed{failed: n, total: len(p.status)}
		}
		return m, tea.Quit
	}
	return m, nil
}

// runCtx is the fleet run's context, the logins': esc and Ctrl+C cancel it.
func (m *Model) runCtx() context.Context { return m.fleetCtx }

func (m *Model) fleetEnded(msg fleetEndedMsg) (tea.Model, tea.Cmd) {
	p := &m.fleetPage
	p.busy--
	p.setStatus(m.fleet.Status())
	if p.busy == 0 {
		if m.quitting {
			m.Outcome = context.Canceled
			return m, tea.Quit
		}
		if !p.chosen {
			p.selected = p.autoSelect()
			p.relog()
		}
	}
	return m, m.bus.listen()
}
