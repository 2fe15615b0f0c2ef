package ui

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/progress"
	"charm.land/bubbles/v2/spinner"
	tea "charm.land/bubbletea/v2"

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
	pageDoctor
	pageFleet // a fleet's plan and run: the table of VMs
)

// action is what a page's key asks the root to do.
type action int

const (
	actNone       action = iota
	actApply             // run the plan
	actBack              // back to the settings, every value kept
	actNotApplied        // quit without applying the plan
	actCancelRun         // cancel the running step, then quit (130)
	actRetry             // run again from the failed step
	actSkip              // skip the failed step and go on
	actFail              // quit with the failure
	actDone              // quit, all is well
	actDoctor            // run doctor's checks
	actDoctorBack        // leave doctor for the page it was opened from
)

// Model is the wizard: it routes messages to the page on screen and moves
// between pages; the pages keep their own state.
type Model struct {
	ctx          context.Context
	cancel       context.CancelFunc // cancels the running step
	doctorCancel context.CancelFunc
	doctorGen    int
	engine       Engine
	settings     steps.Settings
	opts         Options
	bus          bus
	trace        *tracer

	width, height int
	page          page
	env           *steps.Env
	data          *runData
	skip          map[string]bool
	spin          spinner.Model

	form       *form
	plan       planPage
	run        runPage
	failed     failedPage
	summary    summaryPage
	doctorPage doctorPage
	doctorFrom page
	dialog     dialog
	hostKeys   hostKeysDialog
	queued     []tea.Msg // questions waiting for the dialog on screen
	fleet      Fleet
	one        *steps.FleetRun // a vm: file's run: the fleet of one
	moreHosts  string          // the settings' more VMs, as typed
	// fleetFromForm: the fleet is the settings' VM and more hosts (esc from
	// its preflight failure goes back to them).
	fleetFromForm bool
	fleetAnswers  []byte // that fleet's answers file
	ranOnce       bool
	fleetCtx      context.Context
	fleetPage     fleetPage
	quitting      bool // cancelling: quit when the runner or doctor reports back
	// Outcome is read by the caller after the program ends: nil, an error, or
	// context.Canceled (exit 130).
	Outcome error
}

// Options shape the wizard.
type Options struct {
	// Settings pages first (pre-filled with the settings given to New); without
	// them the wizard starts at the preflight.
	AskSettings bool
	Sources     SettingsSources
	// Doctor starts at doctor's page (after the settings, when asked).
	Doctor bool
	// Only is the half the run is limited to (--only), for the replay line.
	Only string
	// Log receives what the engine does (--log-file); nil: nothing.
	Log io.Writer
	// Fleet, when set, is a fleet (vms:) to run: its plan and run are the
	// table of VMs; the settings pages are not shown.
	Fleet *steps.Fleet
	// Parallel is how many VMs of a fleet run at once (0: the default).
	Parallel int
	// Static freezes the spinner and progress animations, so that every frame
	// depends on state alone (golden tests; also calmer on slow links).
	Static bool
}

// New makes the wizard.
func New(ctx context.Context, engine Engine, s steps.Settings, o Options) *Model {
	data := &runData{failed: -1}
	m := &Model{
		ctx: ctx, engine: engine, settings: s, opts: o, bus: make(bus, 64), trace: newTracer(o.Log),
		width: 80, height: 24, skip: map[string]bool{}, data: data,
		spin:       spinner.New(spinner.WithSpinner(spinner.Dot)),
		plan:       newPlanPage(data),
		run:        newRunPage(data, o.Static),
		failed:     newFailedPage(data),
		summary:    newSummaryPage(data),
		doctorPage: newDoctorPage(),
		dialog:     newDialog(),
		fleetPage:  newFleetPage(o.Parallel),
	}
	m.page = pagePreparing
	if o.Doctor {
		m.page = pageDoctor
	}
	if o.AskSettings && o.Fleet == nil {
		action := actionApply
		if o.Doctor {
			action = actionDoctor
		}
		m.page, m.form = pageSettings, newForm(s, o.Sources, action, "")
	}
	m.resize()
	return m
}

// Init starts the preflight (or the settings, or doctor). Background work
// starts in goroutines that report through the bus; the bus's listener is the
// only command that reads it.
func (m *Model) Init() tea.Cmd {
	tick := m.spin.Tick
	if m.opts.Static {
		tick = nil
	}
	cmds := []tea.Cmd{tick, m.bus.listen(), tea.RequestBackgroundColor}
	switch m.page {
	case pageSettings:
		cmds = append(cmds, m.form.Init())
	case pageDoctor:
		m.startDoctor(pageDoctor)
	default:
		if m.opts.Fleet != nil {
			m.prepareFleet()
		} else {
			m.prepare()
		}
	}
	return tea.Batch(cmds...)
}

// Close ends what the run opened (the VM's connection).
func (m *Model) Close() {
	if m.env != nil {
		m.env.Close()
		m.env = nil
	}
	if m.fleet != nil {
		m.fleet.Close()
	}
}

func (m *Model) resize() {
	w, h := max(m.width, 20), max(m.height, 6)
	if m.form != nil {
		m.form.SetSize(w, h)
	}
	m.plan.SetSize(w, h)
	m.run.SetSize(w, h)
	m.failed.SetSize(w, h)
	m.summary.SetSize(w, h)
	m.doctorPage.SetSize(w, h)
	m.fleetPage.SetSize(w, h)
	m.dialog.width = w
	m.hostKeys.width, m.hostKeys.maxRows = w, (h-5)/2
}

func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.resize()
		if m.page == pageSettings {
			return m.settingsUpdate(msg)
		}
		return m, nil
	case tea.BackgroundColorMsg:
		setTheme(msg.IsDark())
		m.resize() // the pages' content is styled when set
		if m.page == pageSettings {
			return m.settingsUpdate(msg)
		}
		return m, nil
	case spinner.TickMsg:
		if m.fleet != nil {
			m.fleetPage.setStatus(m.fleet.Status())
		}
		var cmd tea.Cmd
		m.spin, cmd = m.spin.Update(msg)
		return m, cmd
	case progress.FrameMsg:
		var cmd tea.Cmd
		m.run.bar, cmd = m.run.bar.Update(msg)
		return m, cmd
	case promptMsg, hostKeysMsg:
		return m, tea.Batch(m.ask(msg), m.bus.listen())
	case fleetPreparedMsg:
		return m.fleetPrepared(msg)
	case fleetEventMsg:
		m.trace.fleetEvent(steps.FleetEvent(msg))
		if m.fleet != nil { // nil while the VMs log in
			m.fleetPage.setStatus(m.fleet.Status())
		}
		m.fleetPage.event(steps.FleetEvent(msg))
		m.fleetPage.relog()
		return m, m.bus.listen()
	case fleetEndedMsg:
		return m.fleetEnded(msg)
	case preparedMsg:
		return m.prepared(msg)
	case checkedMsg:
		return m.checked(msg)
	case eventMsg:
		m.run.event(steps.Event(msg))
		return m, tea.Batch(m.bus.listen(), m.run.barCmd(steps.Event(msg)))
	case ranMsg:
		return m.ran(msg)
	case doctorMsg:
		return m.doctorReport(msg)
	case tea.MouseWheelMsg:
		m.wheel(msg.Button == tea.MouseWheelUp)
		return m, nil
	case tea.KeyPressMsg:
		return m.key(msg)
	}
	if m.page == pageSettings {
		return m.settingsUpdate(msg)
	}
	return m, nil
}

// settingsUpdate hands messages to the settings pages until they are done.
func (m *Model) settingsUpdate(msg tea.Msg) (tea.Model, tea.Cmd) {
	state, cmd := m.form.Update(msg)
	switch state {
	case formAborted:
		m.Outcome = context.Canceled
		return m, tea.Quit
	case formDone:
		m.settings = m.form.settings()
		if m.form.action == actionDoctor {
			return m, m.startDoctor(pageSettings)
		}
		m.startSettings()
		return m, nil
	}
	return m, cmd
}

// startSettings starts the preflight of the settings the pages made: of a
// fleet when more hosts are listed.
func (m *Model) startSettings() {
	m.page = pagePreparing
	m.moreHosts = m.form.moreHosts
	if hosts := m.form.hosts(); len(hosts) > 0 {
		f, data, err := steps.FleetOfHosts(m.settings, hosts)
		if err != nil {
			m.showFailure(err, -1)
			return
		}
		m.opts.Fleet, m.fleetFromForm, m.fleetAnswers = &f, true, data
		m.fleetPage.canBack = true
		m.prepareFleet()
		return
	}
	m.prepare()
}

// backToSettings shows the settings again with every value as it was.
func (m *Model) backToSettings() (tea.Model, tea.Cmd) {
	m.Close()
	m.one, m.ranOnce = nil, false
	if m.fleetFromForm { // the fleet the settings made: made again from them
		m.opts.Fleet, m.fleet, m.fleetFromForm, m.fleetAnswers = nil, nil, false, nil
		m.fleetPage = newFleetPage(m.opts.Parallel)
	}
	m.data.setSteps(nil)
	m.plan.cursor, m.skip = 0, map[string]bool{}
	m.run = newRunPage(m.data, m.opts.Static)
	action := actionApply
	if m.form != nil {
		action = m.form.action
	}
	m.form = newForm(m.settings, m.opts.Sources, action, m.moreHosts)
	m.page = pageSettings
	m.resize()
	return m, m.form.Init()
}

func (m *Model) prepared(msg preparedMsg) (tea.Model, tea.Cmd) {
	if m.page != pagePreparing {
		if msg.env != nil {
			msg.env.Close() // a preflight the operator left
		}
		return m, m.bus.listen()
	}
	if msg.err != nil {
		m.showFailure(msg.err, -1)
		return m, m.bus.listen()
	}
	m.env = msg.env
	m.data.setSteps(msg.steps)
	m.plan.where = m.where()
	m.resize()
	m.check()
	return m, m.bus.listen()
}

func (m *Model) checked(msg checkedMsg) (tea.Model, tea.Cmd) {
	if msg.err != nil {
		m.showFailure(msg.err, -1)
		return m, m.bus.listen()
	}
	m.data.rows, m.page = msg.rows, pagePlan
	m.plan.canBack, m.plan.resumeAt = m.opts.AskSettings, ""
	if m.env != nil {
		if failed, ok := steps.LoadState(m.env.WorkDir, m.env.Settings).Failed(); ok && m.data.index(failed) >= 0 {
			m.plan.resumeAt = m.data.rows[m.data.index(failed)].step.Title()
		}
	}
	m.resize()
	return m, m.bus.listen()
}

func (m *Model) ran(msg ranMsg) (tea.Model, tea.Cmd) {
	m.cancel = nil
	m.run.showBar = false
	if m.quitting {
		m.Outcome = context.Canceled
		return m, tea.Quit
	}
	if msg.err != nil {
		m.showFailure(msg.err, m.data.failed)
	} else {
		m.page = pageSummary
		m.summary.settings = m.settings
		if m.env != nil {
			m.summary.workDir = m.env.WorkDir
		}
		m.resize()
	}
	return m, m.bus.listen()
}

// showFailure shows err on the failure page; step is the failed step, -1 for
// the preflight (whose failure may go back to the settings).
func (m *Model) showFailure(err error, step int) {
	m.page = pageFailed
	m.data.failed = step
	f := &m.failed
	f.err, f.hint = err, steps.HintOf(err)
	f.canBack = step < 0 && m.opts.AskSettings
	f.last = append([]string(nil), m.run.lastLines(6)...)
	f.fill()
}

// apply saves the settings as an answers file beside the run's files, then
// runs the plan.
func (m *Model) apply() {
	if m.env != nil {
		m.summary.answers, m.summary.answersErr = "", nil
		path, err := steps.SaveAnswers(m.settings, m.env.WorkDir)
		if err != nil {
			m.summary.answersErr = err
			m.run.appendLog(warnStyle.Render("! the settings were not saved: " + err.Error()))
		} else {
			m.summary.answers = path
			m.trace.printf("settings saved as %s", path)
		}
		m.summary.only = m.opts.Only
	}
	m.page = pageRun
	m.run.follow = true
	m.resize()
	m.startRun()
}

// retry runs the steps again: those done skip themselves, so it resumes at the
// failed one.
func (m *Model) retry() {
	for i := range m.data.states {
		if m.data.states[i] == stateFailed {
			m.data.states[i] = statePending
		}
	}
	m.data.failed = -1
	m.page = pageRun
	m.run.appendLog(dimStyle.Render("— retrying —"))
	m.startRun()
}

// startDoctor runs doctor's checks on its page; esc goes back to from.
func (m *Model) startDoctor(from page) tea.Cmd {
	m.doctorFrom = from
	m.page = pageDoctor
	d := &m.doctorPage
	d.canBack = from != pageDoctor
	d.report = m.opts.Doctor && !m.opts.AskSettings
	d.where = m.settingsWhere()
	d.start()
	m.doctor()
	return nil
}

func (m *Model) doctorReport(msg doctorMsg) (tea.Model, tea.Cmd) {
	if msg.gen != m.doctorGen {
		return m, m.bus.listen() // from a run left behind
	}
	d := &m.doctorPage
	if !msg.done {
		d.add(msg.result)
		return m, m.bus.listen()
	}
	d.running, d.err = false, msg.err
	m.doctorCancel = nil
	if m.quitting {
		m.Outcome = context.Canceled
		return m, tea.Quit
	}
	if m.opts.Doctor && !m.opts.AskSettings {
		// `vm2mesh doctor` in a terminal: the page is the report; it ends with the checks.
		return m, tea.Quit
	}
	return m, m.bus.listen()
}

func (m *Model) where() string {
	var parts []string
	if m.env != nil && m.env.Client != nil {
		parts = append(parts, "cluster "+m.env.Client.Context)
	}
	if m.env != nil && m.env.VM != nil {
		parts = append(parts, "vm "+m.env.VM.Target.String())
	}
	return joinComma(parts)
}

func (m *Model) settingsWhere() string {
	var parts []string
	if m.settings.KubeContext != "" {
		parts = append(parts, "context "+m.settings.KubeContext)
	}
	if m.settings.VM.Host != "" {
		parts = append(parts, "vm "+m.settings.VM.Host)
	}
	return joinComma(parts)
}

func joinComma(parts []string) string {
	out := ""
	for i, p := range parts {
		if i > 0 {
			out += ", "
		}
		out += p
	}
	return out
}

func (m *Model) wheel(up bool) {
	switch m.page {
	case pagePlan:
		m.plan.wheel(up)
	case pageRun:
		m.run.wheel(up)
	case pageFailed:
		m.failed.wheel(up)
	case pageSummary:
		m.summary.wheel(up)
	case pageDoctor:
		m.doctorPage.wheel(up)
	case pageFleet:
		m.fleetPage.wheel(up)
	}
}

// interrupt is Ctrl+C anywhere: cancel what runs, then quit with 130.
// Progress is saved by the runner as each step ends.
func (m *Model) interrupt() (tea.Model, tea.Cmd) {
	switch {
	case m.fleet != nil && m.fleetPage.busy == 0:
		m.cancel()
		m.Outcome = context.Canceled
		return m, tea.Quit
	case m.cancel != nil:
		m.quitting = true
		m.cancel() // the runner reports back, then we quit
		return m, nil
	case m.doctorCancel != nil:
		m.quitting = true
		m.doctorCancel()
		return m, nil
	}
	m.Outcome = context.Canceled
	return m, tea.Quit
}

func (m *Model) key(k tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	if m.hostKeys.isOpen() {
		if key.Matches(k, keys.Interrupt) {
			m.hostKeys.answer(func(int) remote.HostKeyDecision { return remote.RejectHost }, context.Canceled)
			m.queued = nil
			return m.interrupt()
		}
		m.hostKeys.key(k)
		return m, m.next()
	}
	if m.dialog.prompt != nil {
		if key.Matches(k, keys.Interrupt) {
			m.dialog.answer(promptReply{err: context.Canceled})
			m.queued = nil
			return m.interrupt()
		}
		cmd := m.dialog.key(k)
		if m.dialog.prompt == nil {
			return m, tea.Batch(cmd, m.next())
		}
		return m, cmd
	}
	if m.quitting {
		return m, nil
	}
	if key.Matches(k, keys.Interrupt) {
		return m.interrupt()
	}
	var a action
	switch m.page {
	case pageSettings:
		return m.settingsUpdate(k)
	case pagePreparing:
		if key.Matches(k, keys.Quit) || k.String() == "esc" {
			m.Outcome = context.Canceled
			return m, tea.Quit
		}
	case pagePlan:
		a = m.plan.key(k)
	case pageRun:
		a = m.run.key(k)
	case pageFailed:
		a = m.failed.key(k)
	case pageSummary:
		a = m.summary.key(k)
	case pageDoctor:
		a = m.doctorPage.key(k)
	case pageFleet:
		return m.fleetDo(m.fleetPage.key(k))
	}
	return m.do(a)
}

func (m *Model) do(a action) (tea.Model, tea.Cmd) {
	switch a {
	case actApply:
		m.apply()
	case actBack:
		return m.backToSettings()
	case actNotApplied:
		m.Outcome = errNotApplied
		return m, tea.Quit
	case actCancelRun:
		return m.interrupt()
	case actRetry:
		m.retry()
	case actSkip:
		m.skip[m.data.rows[m.data.failed].step.Name()] = true
		m.retry()
	case actFail:
		m.Outcome = m.failed.err
		return m, tea.Quit
	case actDone:
		if m.page == pageDoctor && m.doctorPage.Failed() > 0 && m.doctorFrom != pageSummary {
			m.Outcome = errDoctorFailed{m.doctorPage.Failed()}
		}
		return m, tea.Quit
	case actDoctor:
		from := m.page
		if from == pageDoctor {
			from = m.doctorFrom
		}
		return m, m.startDoctor(from)
	case actDoctorBack:
		if m.doctorFrom == pageSettings {
			return m.backToSettings()
		}
		m.page = m.doctorFrom
	}
	return m, nil
}

// errDoctorFailed: doctor's page was left with failing checks.
type errDoctorFailed struct{ n int }

func (e errDoctorFailed) Error() string {
	if e.n == 1 {
		return "doctor: 1 check failed"
	}
	return "doctor: " + strconv.Itoa(e.n) + " checks failed"
}

// IsDoctorFailure says whether err is the wizard's report of failing checks.
func IsDoctorFailure(err error) bool {
	var d errDoctorFailed
	return errors.As(err, &d)
}

// Results are doctor's results on its page.
func (m *Model) Results() []steps.CheckResult { return m.doctorPage.results }

func (m *Model) View() tea.View {
	var s string
	spin := strings.TrimSpace(m.spin.View())
	switch m.page {
	case pageSettings:
		s = m.form.View(m.width)
	case pagePreparing:
		what := "the VM"
		if m.opts.Fleet != nil {
			what = "the VMs"
		}
		s = truncate(spin+" checking the settings, the cluster and "+what+"…", m.width) + "\n"
	case pagePlan:
		s = m.plan.View()
	case pageRun:
		s = m.run.View(spin)
	case pageFailed:
		s = m.failed.View()
	case pageSummary:
		s = m.summary.View()
	case pageDoctor:
		s = m.doctorPage.View(spin)
	case pageFleet:
		s = m.fleetPage.View(spin)
	}
	switch {
	case m.hostKeys.isOpen():
		s += "\n" + m.hostKeys.View()
	case m.dialog.prompt != nil:
		s += "\n" + m.dialog.View()
	}
	v := tea.NewView(s)
	inline := m.opts.Doctor && !m.opts.AskSettings
	v.AltScreen = !inline
	if !inline {
		v.MouseMode = tea.MouseModeCellMotion
	}
	v.WindowTitle = "vm2mesh"
	return v
}
