// Package ui is vm2mesh's wizard: Bubble Tea v2 pages over the same steps and
// events `vm2mesh apply` runs. Nothing here changes the cluster or the VM except
// by running steps, and nothing runs before the operator has seen the plan.
//
// Every page is a component with its own state, Update, View and size (the
// files named for them); Model only routes between them. Background work
// (the preflight, the plan's checks, the run, doctor) starts here, in
// goroutines that report through the bus.
package ui

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/remote"
	"github.com/vm2mesh/vm2mesh/steps"
)

// Engine is what the wizard runs: the preflight of the cluster and the VM with
// their steps, and doctor's checks.
type Engine interface {
	Prepare(ctx context.Context, s steps.Settings, p steps.Prompts) (*steps.Env, []steps.Step, error)
	Doctor(ctx context.Context, s steps.Settings, p steps.Prompts, each func(steps.CheckResult)) ([]steps.CheckResult, error)
}

// RealEngine is the one `vm2mesh` uses. The settings it is given are final
// (steps.Resolve, then the form): the kube context is theirs, so the cluster
// on the screen is the cluster the run uses. K8s.Kubeconfig is the flag's,
// kept so that errors name --kubeconfig.
type RealEngine struct {
	K8s  k8s.Options
	Only string // "", "cluster" or "vm"
	// Parallel is how many VMs of a fleet run at once (0: the default).
	Parallel int
}

func (e RealEngine) options() k8s.Options {
	o := e.K8s
	o.NoStdin = true // the wizard owns the terminal
	o.Context = ""   // the settings' kubeContext: the form's choice
	return o
}

// Prepare is the preflight of the fleet of one (steps.FleetRun, as apply's):
// the local checks, the cluster, the login to the VM; a failed login is the
// preflight's error.
func (e RealEngine) Prepare(ctx context.Context, s steps.Settings, p steps.Prompts) (*steps.Env, []steps.Step, error) {
	run := &steps.FleetRun{Fleet: steps.Fleet{Settings: s, VMs: []steps.FleetVM{{Name: "vm", Settings: s}}, Single: true},
		Only: e.Only, K8s: e.options(), Prompts: p}
	if _, err := run.Check(); err != nil {
		return nil, nil, err
	}
	if err := run.Prepare(ctx); err != nil {
		return nil, nil, err
	}
	if st := run.Status()[0]; st.State == steps.VMFailed || st.State == steps.VMInterrupted {
		run.Close()
		return nil, nil, st.Err
	}
	return run.Env(), run.Runners()[0].Steps, nil
}

func (e RealEngine) Doctor(ctx context.Context, s steps.Settings, p steps.Prompts, each func(steps.CheckResult)) ([]steps.CheckResult, error) {
	return steps.Doctor(ctx, s, e.options(), p, each)
}

// bus carries what background work reports (events, prompts, results) into the
// program; the model listens again after each message.
type bus chan tea.Msg

func (b bus) listen() tea.Cmd { return func() tea.Msg { return <-b } }

// Messages from background work.
type (
	preparedMsg struct {
		env   *steps.Env
		steps []steps.Step
		err   error
	}
	checkedMsg struct {
		rows []planRow
		err  error
	}
	eventMsg steps.Event
	ranMsg   struct {
		res steps.Result
		err error
	}
	// promptMsg asks the operator; the background work waits for the reply.
	promptMsg struct {
		kind   promptKind
		title  string
		detail string
		reply  chan promptReply
	}
	// doctorMsg is one check's result (done false) or the end of a doctor run;
	// gen tells a run the operator left from the current one.
	doctorMsg struct {
		gen    int
		result steps.CheckResult
		done   bool
		err    error
	}
)

type promptKind int

const (
	promptHostKey promptKind = iota
	promptSecret
	promptText // an answer shown as it is typed (the server asked with echo on)
)

type promptReply struct {
	decision remote.HostKeyDecision
	secret   string
	err      error
}

// prompts route the engine's questions through the bus to the prompt dialog;
// remote commands go to the trace.
func (b bus) prompts(ctx context.Context, tr *tracer) steps.Prompts {
	ask := func(kind promptKind, title, detail string) promptReply {
		tr.printf("asked: %s", title)
		reply := make(chan promptReply, 1)
		select {
		case b <- promptMsg{kind: kind, title: title, detail: detail, reply: reply}:
		case <-ctx.Done():
			return promptReply{err: ctx.Err()}
		}
		select {
		case r := <-reply:
			return r
		case <-ctx.Done():
			return promptReply{err: ctx.Err()}
		}
	}
	secret := func(title string) (string, error) {
		r := ask(promptSecret, title, "")
		return r.secret, r.err
	}
	return steps.Prompts{
		HostKey: func(host, keyType, fp string) (remote.HostKeyDecision, error) {
			r := ask(promptHostKey, "Unknown host "+host, keyType+" key fingerprint\n"+fp)
			return r.decision, r.err
		},
		Passphrase: func(file string) (string, error) { return secret("Passphrase for " + file) },
		Password:   func(user, host string) (string, error) { return secret("Password for " + user + "@" + host) },
		Sudo:       func(user, host string) (string, error) { return secret("sudo password for " + user + " on " + host) },
		// A keyboard-interactive question other than the password (a one-time
		// code): a dialog each, in the server's words, cleaned of escapes.
		Question: func(user, host, instruction, question string, echo bool) (string, error) {
			kind := promptSecret
			if echo {
				kind = promptText
			}
			r := ask(kind, user+"@"+host+" asks: "+remote.CleanText(strings.TrimSpace(question)), remote.CleanText(strings.TrimSpace(instruction)))
			return r.secret, r.err
		},
		Connecting: func(r remote.Route) { tr.printf("connecting as ssh would:\n%s", r.String()) },
		Trace:      func(command string) { tr.printf("remote: %s", command) },
	}
}

// tracer writes --log-file: what the engine does (the preflight, the steps and
// their events, remote commands as their errors show them, secrets elided),
// one timestamped line each. Nil writes nothing. Prompts' answers are never
// written.
type tracer struct {
	mu sync.Mutex
	w  io.Writer
}

func newTracer(w io.Writer) *tracer {
	if w == nil {
		return nil
	}
	return &tracer{w: w}
}

func (t *tracer) printf(format string, args ...any) {
	if t == nil {
		return
	}
	line := fmt.Sprintf(format, args...)
	t.mu.Lock()
	defer t.mu.Unlock()
	stamp := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	for i, l := range strings.Split(strings.TrimRight(line, "\n"), "\n") {
		if i > 0 {
			l = "  " + l
		}
		fmt.Fprintf(t.w, "%s %s\n", stamp, l)
	}
}

func (t *tracer) event(e steps.Event) { t.eventOf("", e) }

// fleetEvent is event with the VM's name (or the group's) first.
func (t *tracer) fleetEvent(e steps.FleetEvent) {
	who := "vm " + e.VM + ": "
	if e.VM == "" {
		who = "group " + e.Group.String() + ": "
	}
	t.eventOf(who, e.Event)
}

func (t *tracer) eventOf(who string, e steps.Event) {
	switch e.Kind {
	case steps.Started:
		t.printf("%sstep %s: started", who, e.Step)
	case steps.Log:
		t.printf("%sstep %s: %s", who, e.Step, e.Text)
	case steps.Warning:
		t.printf("%sstep %s: warning: %s", who, e.Step, e.Text)
	case steps.Progress:
		if e.Cur == e.Total {
			t.printf("%sstep %s: %s %d bytes", who, e.Step, e.Text, e.Total)
		}
	case steps.Done:
		t.printf("%sstep %s: done: %s", who, e.Step, e.Text)
	case steps.Skipped:
		t.printf("%sstep %s: skipped: %s", who, e.Step, e.Text)
	case steps.Failed:
		t.printf("%sstep %s: failed: %s (hint: %s)", who, e.Step, e.Text, e.Hint)
	}
}

// prepare runs the preflight in the background; prompts come through the bus.
func (m *Model) prepare() {
	b, ctx, engine, s, tr := m.bus, m.ctx, m.engine, m.settings, m.trace
	tr.printf("preflight: context %q, vm %q, workDir %s", s.KubeContext, s.VM.Host, s.WorkDir)
	go func() {
		env, list, err := engine.Prepare(ctx, s, b.prompts(ctx, tr))
		if err != nil {
			tr.printf("preflight failed: %v", err)
		} else {
			tr.printf("preflight passed: %d steps", len(list))
		}
		b <- preparedMsg{env: env, steps: list, err: err}
	}()
}

// check asks every step whether it is done and what it would do (read-only).
func (m *Model) check() {
	b, ctx, env, list := m.bus, m.ctx, m.env, m.data.stepsOf()
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

// startRun runs the steps as the fleet of one (steps.FleetRun, the engine of
// apply and of the wizard's fleets): Run the first time, Retry after; its
// events come through the bus (and the trace).
func (m *Model) startRun() {
	ctx, cancel := context.WithCancel(m.ctx)
	m.cancel = cancel
	b, tr := m.bus, m.trace
	if m.one == nil {
		m.one = steps.FleetOfOne(m.settings, m.env, m.data.stepsOf(), func(e steps.FleetEvent) {
			tr.event(e.Event)
			b <- eventMsg(e.Event)
		})
	}
	skip := make(map[string]bool, len(m.skip))
	for k, v := range m.skip {
		skip[k] = v
	}
	run, first := m.one, !m.ranOnce
	run.Skip, m.ranOnce = skip, true
	go func() {
		var st steps.VMStatus
		if first {
			st = run.Run(ctx)[0]
		} else {
			_ = run.Retry(ctx, "vm")
			st = run.Status()[0]
		}
		res, err := st.Result, st.Err
		tr.printf("run ended: %d ran, %d skipped, error: %v", res.Ran, res.Skipped, err)
		b <- ranMsg{res: res, err: err}
	}()
}

// doctor runs doctor's checks with the current settings; each result comes
// through the bus as it is known.
func (m *Model) doctor() {
	ctx, cancel := context.WithCancel(m.ctx)
	m.doctorCancel = cancel
	m.doctorGen++
	gen, b, engine, s, tr := m.doctorGen, m.bus, m.engine, m.settings, m.trace
	tr.printf("doctor: context %q, vm %q", s.KubeContext, s.VM.Host)
	go func() {
		_, err := engine.Doctor(ctx, s, b.prompts(ctx, tr), func(r steps.CheckResult) {
			tr.printf("doctor %s: %s: %s", r.Name, r.Status, r.Found)
			b <- doctorMsg{gen: gen, result: r}
		})
		b <- doctorMsg{gen: gen, done: true, err: err}
	}()
}
