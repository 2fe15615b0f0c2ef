package ui

import (
	"context"
	"errors"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/huh/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/vm2mesh/vm2mesh/remote"
	"github.com/vm2mesh/vm2mesh/steps"
)

// scriptedStep is a stand-in step for UI tests: it reports what it is told to and
// counts its runs; it touches no cluster and no VM.
type scriptedStep struct {
	name, title string
	done        bool     // Check says skip
	fails       int      // fail this many runs first
	logs        []string // logged while running
	skippable   bool
	mu          sync.Mutex
	runs        int
	succeeded   bool          // like a real step, it is done once it has run
	block       chan struct{} // when set, Run waits for it or for cancellation
}

func (s *scriptedStep) Name() string  { return s.name }
func (s *scriptedStep) Title() string { return s.title }
func (s *scriptedStep) Check(context.Context, *steps.Env) (steps.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return steps.Status{Skip: s.done || s.succeeded, Reason: "scripted"}, nil
}
func (s *scriptedStep) Plan(*steps.Env) ([]steps.Action, error) {
	return []steps.Action{{Kind: steps.Command, Title: "scripted command", Argv: []string{"echo", s.name}}}, nil
}
func (s *scriptedStep) Skippable() bool { return s.skippable }
func (s *scriptedStep) Run(ctx context.Context, _ *steps.Env, out *steps.Output) error {
	s.mu.Lock()
	s.runs++
	n := s.runs
	s.mu.Unlock()
	for _, l := range s.logs {
		out.Logf("%s", l)
	}
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if n <= s.fails {
		return steps.WithHint(errors.New(s.name+" broke"), "fix %s", s.name)
	}
	out.Summary("%s finished", s.name)
	s.mu.Lock()
	s.succeeded = true
	s.mu.Unlock()
	return nil
}

func (s *scriptedStep) runCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs
}

// scriptedEngine is a stand-in Engine: it may ask a host key question, then hands
// out the scripted steps.
type scriptedEngine struct {
	steps    []steps.Step
	askHost  bool
	decision remote.HostKeyDecision
	err      error
	workDir  string
	// doctor's
	checks      []steps.CheckResult
	blockDoctor bool
	// a fleet's
	fleet     *scriptedFleet
	hostKeys  bool
	decisions []remote.HostKeyDecision
}

func (e *scriptedEngine) Prepare(ctx context.Context, s steps.Settings, p steps.Prompts) (*steps.Env, []steps.Step, error) {
	if e.askHost {
		d, err := p.HostKey("vm.example", "ssh-ed25519", "SHA256:abc")
		if err != nil {
			return nil, nil, err
		}
		e.decision = d
	}
	if e.err != nil {
		return nil, nil, e.err
	}
	return &steps.Env{WorkDir: e.workDir}, e.steps, nil
}

// Doctor reports the scripted check results, one by one, or waits for
// cancellation when block is set.
func (e *scriptedEngine) Doctor(ctx context.Context, s steps.Settings, p steps.Prompts, each func(steps.CheckResult)) ([]steps.CheckResult, error) {
	var out []steps.CheckResult
	for _, r := range e.checks {
		out = append(out, r)
		each(r)
	}
	if e.blockDoctor {
		<-ctx.Done()
		return out, ctx.Err()
	}
	return out, nil
}

// start makes the model and runs its preflight in the background, as Init would.
func start(t *testing.T, e *scriptedEngine) *Model {
	t.Helper()
	e.workDir = t.TempDir()
	m := New(context.Background(), e, steps.Defaults(), Options{})
	m.prepare()
	return m
}

// pump feeds what background work sends into Update until cond holds.
func pump(t *testing.T, m *Model, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case msg := <-m.bus:
			m.Update(msg) // commands are the runtime's: listening, animation
		case <-deadline:
			t.Fatalf("timed out on page %d:\n%s", m.page, plain(m))
		}
	}
}

func press(m *Model, key string) {
	var msg tea.KeyPressMsg
	switch key {
	case "enter":
		msg = tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		msg = tea.KeyPressMsg{Code: tea.KeyEscape}
	case "down":
		msg = tea.KeyPressMsg{Code: tea.KeyDown}
	default:
		msg = tea.KeyPressMsg{Code: rune(key[0]), Text: key}
	}
	m.Update(msg)
}

func TestPlanShowsEverythingAndNothingRunsBeforeEnter(t *testing.T) {
	a := &scriptedStep{name: "a", title: "Step A", done: true}
	b := &scriptedStep{name: "b", title: "Step B", logs: []string{"working on b"}}
	m := start(t, &scriptedEngine{steps: []steps.Step{a, b}})
	pump(t, m, func() bool { return m.page == pagePlan })
	view := plain(m)
	for _, want := range []string{"Step A (skip: already done)", "Step B", "nothing changes until you press enter"} {
		if !strings.Contains(view, want) {
			t.Errorf("plan lacks %q:\n%s", want, view)
		}
	}
	press(m, "down")
	if !strings.Contains(plain(m), "$ echo b") {
		t.Errorf("the selected step's command is not shown:\n%s", plain(m))
	}
	time.Sleep(100 * time.Millisecond)
	if a.runCount()+b.runCount() != 0 {
		t.Fatal("a step ran before the plan was accepted")
	}
	press(m, "enter")
	pump(t, m, func() bool { return m.page == pageSummary })
	if a.runCount() != 0 || b.runCount() != 1 {
		t.Errorf("runs a=%d b=%d", a.runCount(), b.runCount())
	}
	view = plain(m)
	for _, want := range []string{"Done", "b finished", "skipped: scripted", "kubectl get workloadentries -n vm"} {
		if !strings.Contains(view, want) {
			t.Errorf("summary lacks %q:\n%s", want, view)
		}
	}
}

func TestFailureOffersRetryAndSkip(t *testing.T) {
	flaky := &scriptedStep{name: "flaky", title: "Flaky step", fails: 1, logs: []string{"trying"}}
	broken := &scriptedStep{name: "broken", title: "Broken step", fails: 99, skippable: true}
	m := start(t, &scriptedEngine{steps: []steps.Step{flaky, broken}})
	pump(t, m, func() bool { return m.page == pagePlan })
	press(m, "enter")
	pump(t, m, func() bool { return m.page == pageFailed })
	view := plain(m)
	for _, want := range []string{"Failed: Flaky step", "flaky broke", "hint: fix flaky", "trying", "r retry"} {
		if !strings.Contains(view, want) {
			t.Errorf("failure screen lacks %q:\n%s", want, view)
		}
	}
	if strings.Contains(view, "s skip") {
		t.Error("skip offered for a step that is not safe to skip")
	}
	press(m, "r")
	pump(t, m, func() bool { return m.page == pageFailed && m.data.failed == 1 })
	if !strings.Contains(plain(m), "s skip") {
		t.Errorf("skip not offered:\n%s", plain(m))
	}
	press(m, "s")
	pump(t, m, func() bool { return m.page == pageSummary })
	if flaky.runCount() != 2 || broken.runCount() != 1 {
		t.Errorf("runs flaky=%d broken=%d", flaky.runCount(), broken.runCount())
	}
}

func TestHostKeyPromptAnswersThePreflight(t *testing.T) {
	e := &scriptedEngine{steps: []steps.Step{&scriptedStep{name: "a", title: "A"}}, askHost: true}
	m := start(t, e)
	pump(t, m, func() bool { return m.dialog.prompt != nil })
	view := plain(m)
	for _, want := range []string{"Unknown host vm.example", "ssh-ed25519", "SHA256:abc", "y trust and remember"} {
		if !strings.Contains(view, want) {
			t.Errorf("prompt lacks %q:\n%s", want, view)
		}
	}
	press(m, "y")
	pump(t, m, func() bool { return m.page == pagePlan })
	if e.decision != remote.AcceptAndRemember {
		t.Errorf("decision %v", e.decision)
	}
}

func TestSecretPromptIsMasked(t *testing.T) {
	m := New(context.Background(), &scriptedEngine{}, steps.Defaults(), Options{})
	reply := make(chan promptReply, 1)
	m.Update(promptMsg{kind: promptSecret, title: "sudo password for admin on vm", reply: reply})
	for _, r := range "hunter2" {
		press(m, string(r))
	}
	if view := plain(m); strings.Contains(view, "hunter2") || !strings.Contains(view, "sudo password for admin") {
		t.Errorf("secret prompt:\n%s", view)
	}
	press(m, "enter")
	if got := <-reply; got.secret != "hunter2" {
		t.Errorf("secret %q", got.secret)
	}
}

func TestEscCancelsTheRunningStepAfterAsking(t *testing.T) {
	slow := &scriptedStep{name: "slow", title: "Slow step", block: make(chan struct{})}
	m := start(t, &scriptedEngine{steps: []steps.Step{slow}})
	pump(t, m, func() bool { return m.page == pagePlan })
	press(m, "enter")
	pump(t, m, func() bool { return m.data.states[0] == stateRunning })
	press(m, "esc")
	if !strings.Contains(plain(m), "Cancel the running step and quit?") {
		t.Fatalf("no confirmation:\n%s", plain(m))
	}
	press(m, "y")
	pump(t, m, func() bool { return m.Outcome != nil })
	if !errors.Is(m.Outcome, context.Canceled) {
		t.Errorf("outcome %v", m.Outcome)
	}
}

func TestPreflightFailureSaysWhatToFix(t *testing.T) {
	e := &scriptedEngine{err: steps.WithHint(errors.New("cannot reach the API server"), "check the kubeconfig")}
	m := start(t, e)
	pump(t, m, func() bool { return m.page == pageFailed })
	view := plain(m)
	for _, want := range []string{"Before anything changed", "cannot reach the API server", "hint: check the kubeconfig"} {
		if !strings.Contains(view, want) {
			t.Errorf("lacks %q:\n%s", want, view)
		}
	}
	if strings.Contains(view, "r retry") {
		t.Error("retry offered before any step")
	}
}

// plain is the view as the operator reads it, without styling.
func plain(m *Model) string { return ansi.Strip(m.View().Content) }

func TestStartedAgainItOffersToResume(t *testing.T) {
	e := &scriptedEngine{steps: []steps.Step{&scriptedStep{name: "a", title: "Step A"}, &scriptedStep{name: "b", title: "Step B"}}}
	m := start(t, e)
	st := steps.LoadState(e.workDir, steps.Settings{})
	st.Mark("b", "failed", "boom")
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	pump(t, m, func() bool { return m.page == pagePlan })
	if !strings.Contains(plain(m), "The last run stopped at Step B: enter resumes there.") {
		t.Errorf("no resume offer:\n%s", plain(m))
	}
}

// A keyboard-interactive question is a dialog of its own, in the server's words
// (escapes cleaned); the answer shows as typed only when the server asked so.
func TestKeyboardInteractiveQuestionsAreDialogs(t *testing.T) {
	b := make(bus, 1)
	answers := make(chan string, 2)
	q := b.prompts(context.Background(), nil).Question
	go func() {
		a, _ := q("admin", "vm", "Two-factor \x1b[31mlogin\x1b[0m", "Verification code: ", true)
		answers <- a
		a, _ = q("admin", "vm", "", "PIN: ", false)
		answers <- a
	}()
	m := New(context.Background(), &scriptedEngine{}, steps.Defaults(), Options{})
	for i, tc := range []struct {
		typed, shown, hidden string
	}{
		{"123456", "admin@vm asks: Verification code:", ""},
		{"4321", "admin@vm asks: PIN:", "4321"},
	} {
		msg := (<-b).(promptMsg)
		m.Update(msg)
		for _, r := range tc.typed {
			press(m, string(r))
		}
		view := plain(m)
		if !strings.Contains(view, tc.shown) || strings.Contains(view, "\x1b[31m") {
			t.Errorf("question %d:\n%s", i+1, view)
		}
		if i == 0 && (!strings.Contains(view, "Two-factor login") || !strings.Contains(view, "123456")) {
			t.Errorf("an echoed question hides the instruction or the answer:\n%s", view)
		}
		if tc.hidden != "" && strings.Contains(view, tc.hidden) {
			t.Errorf("a question asked without echo shows the answer:\n%s", view)
		}
		press(m, "enter")
		if got := <-answers; got != tc.typed {
			t.Errorf("answer %q, want %q", got, tc.typed)
		}
	}
}

// startAsked is start for a wizard that had its settings pages (over a
// kubeconfig of the test's own): esc may go back to them.
func startAsked(t *testing.T, e *scriptedEngine, s steps.Settings, log *strings.Builder) *Model {
	t.Helper()
	e.workDir = t.TempDir()
	s.WorkDir = e.workDir
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{AskSettings: true, Static: true, Sources: SettingsSources{Kubeconfig: kubeconfig, SSHConfig: filepath.Join(t.TempDir(), "none")}}
	if log != nil {
		o.Log = log
	}
	m := New(context.Background(), e, s, o)
	m.page = pagePreparing // as if the settings pages were done
	m.prepare()
	return m
}

func TestEscFromThePlanGoesBackToTheSettingsWithEveryValueKept(t *testing.T) {
	s := steps.Defaults()
	s.App, s.Namespace, s.VM.Host = "web", "shop", "vm.example"
	e := &scriptedEngine{steps: []steps.Step{&scriptedStep{name: "a", title: "Step A"}}}
	m := startAsked(t, e, s, nil)
	pump(t, m, func() bool { return m.page == pagePlan })
	if !strings.Contains(plain(m), "esc settings") {
		t.Errorf("the plan does not offer esc:\n%s", plain(m))
	}
	press(m, "esc")
	if m.page != pageSettings || m.form == nil {
		t.Fatalf("page %d after esc", m.page)
	}
	got := m.form.settings()
	if got.App != "web" || got.Namespace != "shop" || got.VM.Host != "vm.example" {
		t.Errorf("the settings came back as %+v", got)
	}
}

func TestEscFromThePreflightsFailureGoesBackToTheSettings(t *testing.T) {
	s := steps.Defaults()
	s.MeshID = "mesh7"
	e := &scriptedEngine{err: errors.New("cannot reach the API server")}
	m := startAsked(t, e, s, nil)
	pump(t, m, func() bool { return m.page == pageFailed })
	press(m, "esc")
	if m.page != pageSettings || m.form.settings().MeshID != "mesh7" {
		t.Fatalf("page %d, settings %+v", m.page, m.form.settings())
	}
}

func TestCtrlCCancelsTheRunAndQuitsInterrupted(t *testing.T) {
	slow := &scriptedStep{name: "slow", title: "Slow step", block: make(chan struct{})}
	m := start(t, &scriptedEngine{steps: []steps.Step{slow}})
	pump(t, m, func() bool { return m.page == pagePlan })
	press(m, "enter")
	pump(t, m, func() bool { return m.data.states[0] == stateRunning })
	m.Update(tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl})
	pump(t, m, func() bool { return m.Outcome != nil })
	if !errors.Is(m.Outcome, context.Canceled) {
		t.Errorf("outcome %v", m.Outcome)
	}
	// Before a run too.
	m = New(context.Background(), &scriptedEngine{}, steps.Defaults(), Options{})
	m.Update(tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl})
	if !errors.Is(m.Outcome, context.Canceled) {
		t.Errorf("outcome before the run %v", m.Outcome)
	}
}

func TestTheLogFileTellsWhatTheEngineDidAndTheAnswersAreSaved(t *testing.T) {
	var log strings.Builder
	s := steps.Defaults()
	s.App = "web"
	e := &scriptedEngine{steps: []steps.Step{&scriptedStep{name: "a", title: "Step A", logs: []string{"made a"}}}}
	m := startAsked(t, e, s, &log)
	pump(t, m, func() bool { return m.page == pagePlan })
	press(m, "enter")
	pump(t, m, func() bool { return m.page == pageSummary })
	for _, want := range []string{"preflight: context", "preflight passed: 1 steps", "step a: started", "step a: made a", "step a: done: a finished", "settings saved as"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, log.String())
		}
	}
	data, err := os.ReadFile(filepath.Join(e.workDir, "answers.yaml"))
	if err != nil || !strings.Contains(string(data), "app: web") {
		t.Fatalf("answers.yaml: %v\n%s", err, data)
	}
	if !strings.Contains(plain(m), "replay: vm2mesh apply -f") {
		t.Errorf("the summary gives no replay:\n%s", plain(m))
	}
}

func TestDoctorFromTheSummaryAndBack(t *testing.T) {
	e := &scriptedEngine{steps: []steps.Step{&scriptedStep{name: "a", title: "Step A"}},
		checks: []steps.CheckResult{{Name: "cluster-api", Section: "cluster", Status: steps.CheckFail, Found: "refused", Hint: "start the cluster"}}}
	m := start(t, e)
	pump(t, m, func() bool { return m.page == pagePlan })
	press(m, "enter")
	pump(t, m, func() bool { return m.page == pageSummary })
	press(m, "d")
	pump(t, m, func() bool { return m.page == pageDoctor && !m.doctorPage.running })
	view := plain(m)
	for _, want := range []string{"✗ cluster-api: refused", "hint: start the cluster", "doctor: 0 ok, 1 failed"} {
		if !strings.Contains(view, want) {
			t.Errorf("doctor page lacks %q:\n%s", want, view)
		}
	}
	press(m, "esc")
	if m.page != pageSummary {
		t.Errorf("esc from doctor: page %d", m.page)
	}
}

func TestDoctorChosenOnTheFirstPageRunsTheChecksAndEscGoesBack(t *testing.T) {
	e := &scriptedEngine{checks: []steps.CheckResult{{Name: "cluster-api", Section: "cluster", Status: steps.CheckOK, Found: "Kubernetes v1.34.4"}}}
	s := steps.Defaults()
	s.App = "web"
	m := startAsked(t, e, s, nil)
	m.backToSettings() // the settings pages, as the wizard starts
	m.form.action = actionDoctor
	m.form.huh.State = huh.StateCompleted // as enter on the last field does
	m.settingsUpdate(nil)
	pump(t, m, func() bool { return m.page == pageDoctor && !m.doctorPage.running })
	if view := plain(m); !strings.Contains(view, "✓ cluster-api: Kubernetes v1.34.4") || !strings.Contains(view, "esc back") {
		t.Errorf("doctor page:\n%s", view)
	}
	press(m, "esc")
	if m.page != pageSettings || m.form.action != actionDoctor || m.form.settings().App != "web" {
		t.Errorf("esc from doctor: page %d, action %s, %+v", m.page, m.form.action, m.form.settings())
	}
}

// The palette follows the terminal's background; the dim grey is never ANSI 8
// (dark Solarized's background).
func TestThePaletteFollowsTheBackground(t *testing.T) {
	defer setTheme(true)
	m := New(context.Background(), &scriptedEngine{}, steps.Defaults(), Options{})
	m.Update(tea.BackgroundColorMsg{Color: color.White})
	light := dimStyle.GetForeground()
	m.Update(tea.BackgroundColorMsg{Color: color.Black})
	dark := dimStyle.GetForeground()
	if light == dark {
		t.Errorf("the same grey on light and dark: %v", light)
	}
	for _, c := range []any{light, dark} {
		if c == lipgloss.Color("8") {
			t.Errorf("dim is ANSI 8")
		}
	}
}
