package ui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/progress"
	"charm.land/bubbles/v2/spinner"
	"charm.land/bubbles/v2/textinput"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"charm.land/huh/v2"

	"github.com/vm2mesh/vm2mesh/remote"
	"github.com/vm2mesh/vm2mesh/steps"
)

type page int

const (
	pageSettings page = iota
	pagePreparing
	pagePlan
	pageRun
	pageFailed
	pageSummary
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

// Model is the wizard after the settings: preflight, plan, run, failure, summary.
type Model struct {
	ctx      context.Context
	cancel   context.CancelFunc // cancels the running step
	engine   Engine
	settings steps.Settings
	bus      bus

	width, height int
	page          page
	err           error // preflight or run failure

	env     *steps.Env
	rows    []planRow
	states  []stepState
	notes   []string // per step: the done or skip line
	cursor  int      // the selected step on the plan page
	detail  viewport.Model
	log     viewport.Model
	lines   []string
	follow  bool // the log pane follows new lines unless scrolled up
	spin    spinner.Model
	bar     progress.Model
	showBar bool
	barText string
	barPct  float64
	barFrom time.Time // when the current transfer started, for its rate
	static  bool
	res     steps.Result
	failed  int // index of the failed step
	hint    string
	skip    map[string]bool

	form        *form
	prompt      *promptMsg
	secret      textinput.Model
	resumeAt    string // the step the last run with these settings stopped at
	confirmQuit bool
	quitting    bool
	// Outcome is read by the caller after the program ends.
	Outcome error
}

// Options shape the wizard.
type Options struct {
	// Settings pages first (pre-filled with the settings given to New); without
	// them the wizard starts at the preflight.
	AskSettings bool
	Sources     SettingsSources
	// Static freezes the spinner and progress animations, so that every frame
	// depends on state alone (golden tests; also calmer on slow links).
	Static bool
}

// New makes the wizard.
func New(ctx context.Context, engine Engine, s steps.Settings, o Options) *Model {
	m := &Model{
		ctx: ctx, engine: engine, settings: s, bus: make(bus, 64),
		width: 80, height: 24, follow: true, skip: map[string]bool{},
		spin:   spinner.New(spinner.WithSpinner(spinner.Dot)),
		bar:    progress.New(progress.WithWidth(40)),
		detail: viewport.New(),
		log:    viewport.New(),
		secret: textinput.New(),
	}
	m.secret.EchoMode = textinput.EchoPassword
	m.page, m.static = pagePreparing, o.Static
	if o.AskSettings {
		m.page, m.form = pageSettings, newForm(s, o.Sources)
	}
	m.resize()
	return m
}

// Init starts the preflight. Background work (preflight, checks, the run) starts
// in goroutines that report through the bus; the bus's listener is the only
// command that reads it.
func (m *Model) Init() tea.Cmd {
	tick := m.spin.Tick
	if m.static {
		tick = nil
	}
	if m.page == pageSettings {
		return tea.Batch(m.form.huh.Init(), tick, m.bus.listen())
	}
	m.prepare()
	return tea.Batch(tick, m.bus.listen())
}

// settingsUpdate hands messages to the settings pages until they are done.
func (m *Model) settingsUpdate(msg tea.Msg) (tea.Model, tea.Cmd) {
	fm, cmd := m.form.huh.Update(msg)
	if f, ok := fm.(*huh.Form); ok {
		m.form.huh = f
	}
	switch m.form.huh.State {
	case huh.StateAborted:
		m.Outcome = errNotApplied
		return m, tea.Quit
	case huh.StateCompleted:
		m.settings = m.form.settings()
		m.page = pagePreparing
		m.prepare()
		return m, nil
	}
	return m, cmd
}

// prepare runs the preflight in the background; prompts come through the bus.
func (m *Model) prepare() {
	b, ctx, engine, s := m.bus, m.ctx, m.engine, m.settings
	go func() {
		env, list, err := engine.Prepare(ctx, s, b.prompts(ctx))
		b <- preparedMsg{env: env, steps: list, err: err}
	}()
}

// check asks every step whether it is done and what it would do (read-only).
func (m *Model) check() {
	b, ctx, env, list := m.bus, m.ctx, m.env, m.stepsOf()
	go func() {
		rows := make([]planRow, len(list))
		for i, st := range list {
			status, err := st.Check(ctx, env)
			if err != nil {
				// Often what an earlier step makes (the VM's files): it is checked again
				// when the step runs.
				status = steps.Status{Reason: "checked when it runs: " + err.Error()}
			}
			acts, err := st.Plan(env)
			if err != nil {
				b <- checkedMsg{err: fmt.Errorf("%s: %w", st.Title(), err)}
				return
			}
			rows[i] = planRow{step: st, skip: status.Skip, reason: status.Reason, actions: acts}
		}
		b <- checkedMsg{rows: rows}
	}()
}

func (m *Model) stepsOf() []steps.Step {
	out := make([]steps.Step, len(m.rows))
	for i, r := range m.rows {
		out[i] = r.step
	}
	return out
}

// run starts the runner; its events come through the bus.
func (m *Model) run() {
	ctx, cancel := context.WithCancel(m.ctx)
	m.cancel = cancel
	b := m.bus
	skip := make(map[string]bool, len(m.skip))
	for k, v := range m.skip {
		skip[k] = v
	}
	r := &steps.Runner{Steps: m.stepsOf(), Env: m.env, Skip: skip, Emit: func(e steps.Event) { b <- eventMsg(e) }}
	go func() {
		res, err := r.Run(ctx)
		b <- ranMsg{res: res, err: err}
	}()
}

func (m *Model) index(step string) int {
	for i, r := range m.rows {
		if r.step.Name() == step {
			return i
		}
	}
	return -1
}

func (m *Model) resize() {
	w := max(m.width, 40)
	if m.form != nil {
		m.form.huh = m.form.huh.WithWidth(w).WithHeight(max(m.height-3, 10))
	}
	m.detail.SetWidth(w)
	m.detail.SetHeight(max(m.height-len(m.rows)-6, 3))
	m.log.SetWidth(w)
	m.log.SetHeight(max(m.height-len(m.rows)-7, 3))
	m.bar.SetWidth(min(w/3, 40))
}

func (m *Model) appendLog(line string) {
	m.lines = append(m.lines, line)
	if len(m.lines) > 2000 {
		m.lines = m.lines[len(m.lines)-2000:]
	}
	m.log.SetContentLines(m.lines)
	if m.follow {
		m.log.GotoBottom()
	}
}

func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.resize()
		m.showDetail()
		if m.page == pageSettings {
			return m.settingsUpdate(msg)
		}
		return m, nil
	case spinner.TickMsg:
		var cmd tea.Cmd
		m.spin, cmd = m.spin.Update(msg)
		return m, cmd
	case progress.FrameMsg:
		var cmd tea.Cmd
		m.bar, cmd = m.bar.Update(msg)
		return m, cmd
	case promptMsg:
		m.prompt = &msg
		m.secret.SetValue("")
		m.secret.EchoMode = textinput.EchoPassword
		if msg.kind == promptText {
			m.secret.EchoMode = textinput.EchoNormal
		}
		return m, tea.Batch(m.secret.Focus(), m.bus.listen())
	case preparedMsg:
		if msg.err != nil {
			m.err, m.page = msg.err, pageFailed
			m.hint, m.failed = steps.HintOf(msg.err), -1
			return m, m.bus.listen()
		}
		m.env = msg.env
		for _, st := range msg.steps {
			m.rows = append(m.rows, planRow{step: st})
		}
		m.states = make([]stepState, len(m.rows))
		m.notes = make([]string, len(m.rows))
		m.resize()
		m.check()
		return m, m.bus.listen()
	case checkedMsg:
		if msg.err != nil {
			m.err, m.page, m.failed = msg.err, pageFailed, -1
			return m, m.bus.listen()
		}
		m.rows, m.page = msg.rows, pagePlan
		if m.env != nil {
			if failed, ok := steps.LoadState(m.env.WorkDir, m.env.Settings).Failed(); ok && m.index(failed) >= 0 {
				m.resumeAt = m.rows[m.index(failed)].step.Title()
			}
		}
		m.resize()
		m.showDetail()
		return m, m.bus.listen()
	case eventMsg:
		m.event(steps.Event(msg))
		return m, tea.Batch(m.bus.listen(), m.barCmd(steps.Event(msg)))
	case ranMsg:
		m.res, m.showBar = msg.res, false
		if msg.err != nil {
			m.err, m.page = msg.err, pageFailed
			m.hint = steps.HintOf(msg.err)
		} else {
			m.page = pageSummary
		}
		if m.quitting {
			m.Outcome = msg.err
			return m, tea.Quit
		}
		return m, m.bus.listen()
	case tea.KeyPressMsg:
		if m.page == pageSettings && m.prompt == nil {
			return m.settingsUpdate(msg)
		}
		return m.key(msg)
	}
	if m.page == pageSettings {
		return m.settingsUpdate(msg)
	}
	return m, nil
}

func (m *Model) barCmd(e steps.Event) tea.Cmd {
	if e.Kind != steps.Progress || e.Total <= 0 {
		return nil
	}
	m.barPct = float64(e.Cur) / float64(e.Total)
	if m.static {
		return nil
	}
	return m.bar.SetPercent(m.barPct)
}

func (m *Model) event(e steps.Event) {
	i := m.index(e.Step)
	switch e.Kind {
	case steps.Started:
		m.states[i] = stateRunning
		m.appendLog(titleStyle.Render("→ " + e.Title))
	case steps.Log:
		m.appendLog("  " + highlight(e.Text))
	case steps.Warning:
		m.appendLog("  " + warnStyle.Render("! "+e.Text))
	case steps.Progress:
		if !m.showBar || e.Cur == 0 {
			m.barFrom = e.Time
		}
		m.showBar = e.Cur < e.Total
		m.barText = fmt.Sprintf("%s %s/%s", e.Text, size(e.Cur), size(e.Total))
		if d := e.Time.Sub(m.barFrom); d > 200*time.Millisecond && !m.static {
			m.barText += fmt.Sprintf(" %s/s", size(int64(float64(e.Cur)/d.Seconds())))
		}
	case steps.Done:
		m.states[i], m.notes[i] = stateDone, e.Text
	case steps.Skipped:
		m.states[i], m.notes[i] = stateSkipped, e.Text
	case steps.Failed:
		m.states[i], m.failed = stateFailed, i
		m.appendLog("  " + failStyle.Render("✗ "+e.Text))
	}
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

func (m *Model) key(k tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	if m.prompt != nil {
		return m.promptKey(k)
	}
	key := k.String()
	if m.confirmQuit {
		m.confirmQuit = false
		if key == "y" {
			m.quitting = true
			if m.cancel != nil && m.page == pageRun {
				m.cancel() // the runner reports back, then we quit
				return m, nil
			}
			m.Outcome = context.Canceled
			return m, tea.Quit
		}
		return m, nil
	}
	switch m.page {
	case pagePlan:
		switch key {
		case "up", "k":
			m.cursor = max(m.cursor-1, 0)
			m.showDetail()
		case "down", "j":
			m.cursor = min(m.cursor+1, len(m.rows)-1)
			m.showDetail()
		case "pgdown", "space":
			m.detail.PageDown()
		case "pgup":
			m.detail.PageUp()
		case "enter", "a":
			m.page = pageRun
			m.run()
			return m, nil
		case "q", "esc", "ctrl+c":
			m.Outcome = errNotApplied
			return m, tea.Quit
		}
	case pageRun:
		switch key {
		case "esc", "ctrl+c":
			m.confirmQuit = true
		case "up", "k", "pgup":
			m.follow = false
			if key == "pgup" {
				m.log.PageUp()
			} else {
				m.log.ScrollUp(1)
			}
		case "down", "j", "pgdown":
			if key == "pgdown" {
				m.log.PageDown()
			} else {
				m.log.ScrollDown(1)
			}
			m.follow = m.log.AtBottom()
		case "end", "G":
			m.follow = true
			m.log.GotoBottom()
		}
	case pageFailed:
		switch key {
		case "r":
			if m.failed >= 0 {
				return m.retry()
			}
		case "s":
			if m.failed >= 0 && skippable(m.rows[m.failed].step) {
				m.skip[m.rows[m.failed].step.Name()] = true
				return m.retry()
			}
		case "q", "esc", "ctrl+c":
			m.Outcome = m.err
			return m, tea.Quit
		}
	case pageSummary, pagePreparing:
		switch key {
		case "q", "enter", "esc", "ctrl+c":
			if m.page == pagePreparing {
				m.Outcome = context.Canceled
			}
			return m, tea.Quit
		}
	}
	return m, nil
}

// retry runs the steps again: those done skip themselves, so it resumes at the
// failed one.
func (m *Model) retry() (tea.Model, tea.Cmd) {
	m.err, m.hint, m.page = nil, "", pageRun
	for i := range m.states {
		if m.states[i] == stateFailed {
			m.states[i] = statePending
		}
	}
	m.appendLog(dimStyle.Render("— retrying —"))
	m.run()
	return m, nil
}

func skippable(st steps.Step) bool {
	s, ok := st.(interface{ Skippable() bool })
	return ok && s.Skippable()
}

func (m *Model) promptKey(k tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	p := m.prompt
	answer := func(r promptReply) (tea.Model, tea.Cmd) {
		p.reply <- r
		m.prompt = nil
		m.secret.SetValue("")
		return m, nil
	}
	if p.kind == promptHostKey {
		switch k.String() {
		case "y":
			return answer(promptReply{decision: remote.AcceptAndRemember})
		case "o":
			return answer(promptReply{decision: remote.AcceptOnce})
		case "n", "esc", "ctrl+c":
			return answer(promptReply{decision: remote.RejectHost})
		}
		return m, nil
	}
	switch k.String() {
	case "enter":
		return answer(promptReply{secret: m.secret.Value()})
	case "esc", "ctrl+c":
		return answer(promptReply{err: errPromptAborted})
	}
	var cmd tea.Cmd
	m.secret, cmd = m.secret.Update(k)
	return m, cmd
}

// showDetail puts the selected step's manifests and commands in the detail pane.
func (m *Model) showDetail() {
	if m.page != pagePlan || len(m.rows) == 0 {
		return
	}
	r := m.rows[m.cursor]
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
	m.detail.SetContent(b.String())
	m.detail.GotoTop()
}
