package steps

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/remote"
)

// DefaultParallel is how many VMs run at once unless told otherwise.
const DefaultParallel = 10

// VMState is where a VM of a fleet run is.
type VMState string

const (
	VMPending     VMState = "pending"     // not started yet
	VMRunning     VMState = "running"     // connecting or running its steps
	VMDone        VMState = "done"        // every step done or skipped
	VMFailed      VMState = "failed"      // a step (or the login) failed; its progress is saved
	VMInterrupted VMState = "interrupted" // stopped by the operator; its progress is saved
	VMDoneBefore  VMState = "done-before" // every step was done in an earlier run: not contacted
)

// ConnectStep names the login to the VM in events and statuses: it is no step
// of the procedure, but a VM can fail there (host key, password, sudo).
const ConnectStep = "vm-connect"

// VMStatus is one VM's place in a fleet run, for a table of VMs.
type VMStatus struct {
	Name    string
	Group   Group
	WorkDir string // absolute
	State   VMState
	// Step and Title are the step running now, or the last one reached;
	// StepIndex counts it from 1 among Steps.
	Step, Title      string
	StepIndex, Steps int
	Err              error  // VMFailed, VMInterrupted
	Hint             string // VMFailed: what to do about it
	Started, Ended   time.Time
	Result           Result
	// Target, OS say which VM the login reached ("" before it did).
	Target, OS string
}

// Elapsed is how long the VM has run (so far).
func (s VMStatus) Elapsed() time.Duration {
	switch {
	case s.Started.IsZero():
		return 0
	case s.Ended.IsZero():
		return time.Since(s.Started)
	}
	return s.Ended.Sub(s.Started)
}

// FleetEvent is a step's event with the VM it is about; VM is "" for the
// cluster half of a WorkloadGroup, which Group then names.
type FleetEvent struct {
	VM    string
	Group Group
	Event
}

// HostKeyQuestion is one VM's unknown host key, for FleetRun.HostKeys.
type HostKeyQuestion struct {
	VM, Host, KeyType, Fingerprint string
}

// FleetRun runs a fleet: the cluster half once per WorkloadGroup, then every
// VM's pipeline, Parallel at a time; a VM that fails stops only itself. A vm:
// file is the fleet of one. Emit hears every event, one at a time.
//
// Use: Check, Prepare, then Run (or each runner's DryRun); Retry runs one VM
// again; Status is safe to call at any time; Close ends the VM connections.
type FleetRun struct {
	Fleet    Fleet
	Only     string // "", cluster or vm
	Parallel int    // 0: DefaultParallel
	K8s      k8s.Options
	Prompts  Prompts
	Emit     func(FleetEvent)
	// HostKeys, when set, is asked about each VM's unknown host key instead of
	// Prompts.HostKey, with the VM's name, and without waiting for the other
	// prompts: VMs logging in at once ask together, so that a UI can list
	// their fingerprints in one dialog. A changed key is refused before it is
	// asked, as ever. Not used by the fleet of one (Prompts.HostKey is).
	HostKeys func(HostKeyQuestion) (remote.HostKeyDecision, error)
	// Skip names steps every VM skips when they run (the wizard's "skip the
	// failed step"); set it only while nothing runs.
	Skip map[string]bool
	// RedoDone runs VMs whose every step an earlier run did (checking each
	// again); by default a fleet skips them without contacting them. The fleet
	// of one always checks again, as it always did.
	RedoDone bool

	emitMu   sync.Mutex
	promptMu sync.Mutex // one question at a time; events go on meanwhile
	mu       sync.Mutex
	cluster  *Env
	groups   []*groupRun
	vms      []*vmRun
}

type groupRun struct {
	group  Group
	runner *Runner
	mu     sync.Mutex // one run of the cluster half at a time: Run's, or a Retry's
	done   bool
	err    error
	result Result
}

// run runs the group's cluster half; again only if failed says so (a Retry:
// two retried VMs of one failed group run it once).
func (g *groupRun) run(ctx context.Context, onlyIfFailed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if onlyIfFailed && g.err == nil {
		return
	}
	g.result, g.err = g.runner.Run(ctx)
	g.done = true
}

func (g *groupRun) failure() (done bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.done, g.err
}

type vmRun struct {
	vm     FleetVM
	runner *Runner
	group  *groupRun // nil for the fleet of one: its pipeline holds the cluster half
	status VMStatus
	vmHalf bool
}

func (r *FleetRun) parallel() int {
	if r.Parallel <= 0 {
		return DefaultParallel
	}
	return r.Parallel
}

// Check is CheckLocal for every VM of the fleet, before anything is contacted:
// all problems at once, each named by its key (vms[2].identityFile). It makes
// the work directories that exist 0700 and says so in warnings.
func (r *FleetRun) Check() (warnings []string, err error) {
	locals, err := r.checkLocal()
	if err != nil {
		return nil, err
	}
	for _, l := range locals {
		w, err := l.WorkDir.Tighten()
		if err != nil {
			return warnings, err
		}
		if w != "" {
			warnings = append(warnings, w)
		}
	}
	return warnings, nil
}

// Validate is Check without changing anything: for a front end that may yet
// refuse to run (the wizard without a terminal).
func (r *FleetRun) Validate() error {
	_, err := r.checkLocal()
	return err
}

func (r *FleetRun) checkLocal() ([]*Local, error) {
	f := r.Fleet
	var locals []*Local
	if f.Single {
		l, err := CheckLocal(f.Settings, r.K8s, r.Only)
		if err != nil {
			return nil, err
		}
		locals = append(locals, l)
	} else {
		if err := CheckOnly(r.Only); err != nil {
			return nil, err
		}
		var errs ValidationError
		add := func(err error) error {
			var ve ValidationError
			if asValidation(err, &ve) {
				for _, fe := range ve {
					if !slices.Contains(errs, fe) {
						errs = append(errs, fe)
					}
				}
				return nil
			}
			return err
		}
		top, err := CheckWorkDir("workDir", f.Settings.WorkDir, f.Settings.AllowExistingWorkDir, ForceWorkDir)
		if fe := (FieldError{}); errors.As(err, &fe) {
			errs = append(errs, fe)
		} else if err != nil {
			return nil, err
		} else {
			locals = append(locals, &Local{WorkDir: top})
		}
		for _, vm := range f.VMs {
			l, err := CheckLocal(vm.Settings, r.K8s, r.Only)
			if err != nil {
				if err := add(renameVMKeys(err, vm, false)); err != nil {
					return nil, fmt.Errorf("%s: %w", vm.Name, err)
				}
				continue
			}
			locals = append(locals, l)
		}
		if len(errs) > 0 {
			return nil, errs
		}
	}
	return locals, nil
}

// Prepare reads the cluster (once, for every VM), builds each group's and each
// VM's pipeline, and logs in to every VM that will run, Parallel at a time.
// The error is for what stops the whole run (the cluster); a VM whose login
// fails is failed in its status, and the others go on.
func (r *FleetRun) Prepare(ctx context.Context) error {
	f := r.Fleet
	cluster, _ := Halves(f.Settings, r.Only)
	var err error
	if cluster {
		r.cluster, err = Prepare(ctx, f.Settings, r.K8s)
	} else {
		r.cluster, err = NewEnv(f.Settings)
	}
	if err != nil {
		return err
	}
	groups := map[Group]*groupRun{}
	for _, vm := range f.VMs {
		env := r.cluster.forSettings(vm.Settings)
		c, v := Halves(vm.Settings, r.Only)
		var list []Step
		switch {
		case f.Single && c:
			list = append(list, ClusterSteps()...)
		case c:
			list = append(list, VMFiles{})
		}
		if v {
			list = append(list, VMSteps()...)
		}
		run := &vmRun{vm: vm, vmHalf: v, status: VMStatus{Name: vm.Name, Group: GroupOf(vm.Settings), WorkDir: env.WorkDir, State: VMPending, Steps: len(list)}}
		run.runner = &Runner{Steps: list, Env: env, Emit: r.vmEmitter(run)}
		if !f.Single && !r.RedoDone && doneBefore(env, list) {
			run.status.State, run.status.Title = VMDoneBefore, "done in an earlier run"
			run.status.StepIndex = len(list)
		}
		if !f.Single && c {
			g := GroupOf(vm.Settings)
			if groups[g] == nil {
				gs := f.GroupSettings(g)
				genv := r.cluster.forSettings(gs)
				list := ClusterSteps()
				list = list[:len(list)-1] // VMFiles: each VM's own
				groups[g] = &groupRun{group: g}
				groups[g].runner = &Runner{Steps: list, Env: genv, Emit: r.groupEmitter(g)}
				r.groups = append(r.groups, groups[g])
			}
			run.group = groups[g]
		}
		r.vms = append(r.vms, run)
	}
	// A group whose VMs are all done is not run again.
	r.groups = slices.DeleteFunc(r.groups, func(g *groupRun) bool {
		return !slices.ContainsFunc(r.vms, func(v *vmRun) bool { return v.group == g && v.status.State != VMDoneBefore })
	})
	r.each(ctx, func(v *vmRun) bool { return v.vmHalf && v.status.State == VMPending }, func(v *vmRun) {
		if r.connect(ctx, v) == nil {
			r.update(v, func(s *VMStatus) { s.State = VMPending })
		}
	})
	return nil
}

// doneBefore: the saved progress of env's settings has every step done or skipped.
func doneBefore(env *Env, list []Step) bool {
	st := LoadState(env.WorkDir, env.Settings)
	for _, s := range list {
		if ss, ok := st.Steps[s.Name()]; !ok || (ss.Status != "done" && ss.Status != "skipped") {
			return false
		}
	}
	return len(list) > 0
}

// forSettings is the cluster's Env for other settings: another VM, group or
// directory of the same cluster and mesh.
func (e *Env) forSettings(s Settings) *Env {
	c := *e
	c.Settings = s
	c.VM, c.Facts = nil, VMFacts{}
	c.vmChanged, c.agentStarted, c.logOffsets = false, false, [2]int64{}
	if wd, err := NewEnv(s); err == nil {
		c.WorkDir = wd.WorkDir
	}
	return &c
}

// connect logs in to the VM, failing it (and saying so) when it cannot.
func (r *FleetRun) connect(ctx context.Context, v *vmRun) error {
	env := v.runner.Env
	if env.VM != nil {
		return nil
	}
	r.update(v, func(s *VMStatus) {
		s.State, s.Step, s.Title, s.Err, s.Hint = VMRunning, ConnectStep, "Log in to the VM", nil, ""
		if s.Started.IsZero() {
			s.Started = time.Now()
		}
	})
	p := r.prompts(v)
	err := env.ConnectVM(ctx, p)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", ctx.Err())
		}
		r.finish(v, Result{}, err, ConnectStep, "Log in to the VM")
		r.emit(FleetEvent{VM: v.vm.Name, Group: v.status.Group, Event: Event{Step: ConnectStep, Title: "Log in to the VM", Kind: Failed,
			Text: remote.CleanText(err.Error()), Err: err, Hint: remote.CleanText(HintOf(err)), Time: time.Now()}})
		return err
	}
	r.update(v, func(s *VMStatus) {
		s.Target, s.OS = env.VM.Target.String(), fmt.Sprintf("%s (%s, %s), root: %s", env.Facts.OS, env.Facts.Family, env.Facts.Arch, env.Facts.Root)
	})
	return nil
}

// prompts are the run's, one question at a time: VMs connect side by side,
// and the operator answers one of them after the other. The other VMs' events
// do not wait for the answer (a VM emitting an event would stop at its step).
func (r *FleetRun) prompts(v *vmRun) Prompts {
	p := r.Prompts
	if r.Fleet.Single {
		return p
	}
	var mu = &r.promptMu
	if p.Connecting != nil {
		name, group := v.vm.Name, v.status.Group
		p.Connecting = func(route remote.Route) {
			for _, l := range strings.Split(route.String(), "\n") {
				r.emit(FleetEvent{VM: name, Group: group, Event: Event{Step: ConnectStep, Title: "Log in to the VM", Kind: Log, Text: "ssh: " + l, Time: time.Now()}})
			}
		}
	}
	if q := r.HostKeys; q != nil {
		name := v.vm.Name
		p.HostKey = func(host, keyType, fp string) (remote.HostKeyDecision, error) {
			return q(HostKeyQuestion{VM: name, Host: host, KeyType: keyType, Fingerprint: fp})
		}
	} else if q := p.HostKey; q != nil {
		p.HostKey = func(host, keyType, fp string) (remote.HostKeyDecision, error) {
			mu.Lock()
			defer mu.Unlock()
			return q(host, keyType, fp)
		}
	}
	for _, q := range []*func(string, string) (string, error){&p.Password, &p.Sudo} {
		if ask := *q; ask != nil {
			*q = func(user, host string) (string, error) {
				mu.Lock()
				defer mu.Unlock()
				return ask(user, host)
			}
		}
	}
	if q := p.Passphrase; q != nil {
		p.Passphrase = func(file string) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			return q(file)
		}
	}
	if q := p.Question; q != nil {
		p.Question = func(user, host, instruction, question string, echo bool) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			return q(user, host, instruction, question, echo)
		}
	}
	return p
}

// FleetOfOne is the fleet of one (a vm: file) whose preflight is done: env,
// with its cluster and its VM's connection, and the steps to run. The wizard
// runs a single VM through it (Run, then Retry), as apply does.
func FleetOfOne(s Settings, env *Env, list []Step, emit func(FleetEvent)) *FleetRun {
	vm := FleetVM{Name: "vm", Settings: s}
	r := &FleetRun{Fleet: Fleet{Settings: s, VMs: []FleetVM{vm}, Single: true}, Emit: emit, cluster: env}
	run := &vmRun{vm: vm, vmHalf: env.VM != nil, status: VMStatus{Name: vm.Name, Group: GroupOf(s), WorkDir: env.WorkDir, State: VMPending, Steps: len(list)}}
	run.runner = &Runner{Steps: list, Env: env, Emit: r.vmEmitter(run)}
	r.vms = append(r.vms, run)
	return r
}

// Runners are the pipelines that will run, the groups' first: for a plan or a
// dry run. A VM done before, or failed at its login, has none.
func (r *FleetRun) Runners() []*Runner {
	var out []*Runner
	for _, g := range r.groups {
		out = append(out, g.runner)
	}
	for _, v := range r.vms {
		if v.status.State == VMPending {
			out = append(out, v.runner)
		}
	}
	return out
}

// Env is the first VM's environment (the fleet of one's only): what it reached.
func (r *FleetRun) Env() *Env {
	if len(r.vms) == 0 {
		return r.cluster
	}
	return r.vms[0].runner.Env
}

// Cluster is the cluster as Prepare found it.
func (r *FleetRun) Cluster() *Env { return r.cluster }

// Run runs the cluster half of each group, then the VMs, Parallel at a time,
// and returns every VM's status. A failed group fails its VMs; a failed VM
// stops only itself. Interrupted (ctx), every VM saves its progress and stops.
func (r *FleetRun) Run(ctx context.Context) []VMStatus {
	for _, g := range r.groups {
		if ctx.Err() != nil {
			break
		}
		g.run(ctx, false)
	}
	r.each(ctx, func(v *vmRun) bool { return v.status.State == VMPending }, func(v *vmRun) {
		_ = r.runVM(ctx, v)
	})
	if ctx.Err() != nil {
		for _, v := range r.vms {
			if v.status.State == VMPending {
				r.finish(v, Result{}, fmt.Errorf("interrupted before it started: %w", ctx.Err()), "", "")
			}
		}
	}
	return r.Status()
}

// GroupResults are how each group's cluster half ended.
func (r *FleetRun) GroupResults() map[Group]error {
	out := map[Group]error{}
	for _, g := range r.groups {
		if done, err := g.failure(); done {
			out[g.group] = err
		}
	}
	return out
}

// Retry runs one VM's pipeline again (a failed or interrupted one, from the
// table of a wizard), logging in first if it must; the others go on. Its
// group's cluster half runs again first if it failed.
func (r *FleetRun) Retry(ctx context.Context, name string) error {
	var v *vmRun
	for _, x := range r.vms {
		if x.vm.Name == name {
			v = x
		}
	}
	if v == nil {
		return fmt.Errorf("no VM named %q in this run", name)
	}
	// Claimed under the lock: a second Retry of the same VM (a key pressed
	// twice) is refused instead of running its pipeline twice at once.
	r.mu.Lock()
	switch v.status.State {
	case VMRunning:
		r.mu.Unlock()
		return fmt.Errorf("%s is running", name)
	case VMPending:
		r.mu.Unlock()
		return fmt.Errorf("%s has not run yet", name)
	}
	v.status.State, v.status.Err, v.status.Hint, v.status.Started, v.status.Ended = VMRunning, nil, "", time.Time{}, time.Time{}
	r.mu.Unlock()
	if g := v.group; g != nil {
		g.run(ctx, true)
	}
	return r.runVM(ctx, v)
}

func groupFailure(g *groupRun) (bool, error) {
	if g == nil {
		return false, nil
	}
	return g.failure()
}

// runVM logs in when needed and runs the VM's pipeline.
func (r *FleetRun) runVM(ctx context.Context, v *vmRun) error {
	if ctx.Err() != nil {
		err := fmt.Errorf("interrupted before it started: %w", ctx.Err())
		r.finish(v, Result{}, err, "", "")
		return err
	}
	if _, gerr := groupFailure(v.group); gerr != nil {
		g := v.group
		err := WithHint(fmt.Errorf("the cluster half of WorkloadGroup %s failed at %s", g.group, failedStep(g.runner)), "fix that failure (above); the next run resumes there")
		r.finish(v, Result{}, err, "", "")
		return err
	}
	r.update(v, func(s *VMStatus) {
		s.State = VMRunning
		if s.Started.IsZero() {
			s.Started = time.Now()
		}
	})
	if v.vmHalf {
		if err := r.connect(ctx, v); err != nil {
			return err
		}
	}
	v.runner.Skip = r.Skip
	res, err := v.runner.Run(ctx)
	r.finish(v, res, err, "", "")
	if !r.Fleet.Single {
		v.runner.Env.Close() // its connection is not needed any more; Retry logs in again
		v.runner.Env.VM = nil
	}
	return err
}

func failedStep(run *Runner) string {
	name, _ := LoadState(run.Env.WorkDir, run.Env.Settings).Failed()
	return name
}

// each runs fn for the VMs that match, Parallel at a time, and waits.
func (r *FleetRun) each(ctx context.Context, match func(*vmRun) bool, fn func(*vmRun)) {
	sem := make(chan struct{}, r.parallel())
	var wg sync.WaitGroup
	for _, v := range r.vms {
		r.mu.Lock()
		ok := match(v)
		r.mu.Unlock()
		if !ok {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(v)
		}()
	}
	wg.Wait()
}

func (r *FleetRun) update(v *vmRun, fn func(*VMStatus)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(&v.status)
}

func (r *FleetRun) finish(v *vmRun, res Result, err error, step, title string) {
	r.update(v, func(s *VMStatus) {
		s.Result, s.Ended = res, time.Now()
		if s.Started.IsZero() {
			s.Started = s.Ended
		}
		if step != "" {
			s.Step = step
			if title != "" {
				s.Title = title
			}
		}
		switch {
		case err == nil:
			s.State, s.Err, s.Hint = VMDone, nil, ""
		case errors.Is(err, context.Canceled):
			s.State, s.Err, s.Hint = VMInterrupted, err, ""
		default:
			s.State, s.Err, s.Hint = VMFailed, err, HintOf(err)
		}
	})
}

// Status is every VM's status, in the answers file's order.
func (r *FleetRun) Status() []VMStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]VMStatus, len(r.vms))
	for i, v := range r.vms {
		out[i] = v.status
	}
	return out
}

// Close ends every VM connection.
func (r *FleetRun) Close() {
	for _, v := range r.vms {
		v.runner.Env.Close()
		v.runner.Env.VM = nil
	}
}

func (r *FleetRun) emit(e FleetEvent) {
	if r.Emit == nil {
		return
	}
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.Emit(e)
}

// vmEmitter keeps the VM's status at its step and passes the event on.
func (r *FleetRun) vmEmitter(v *vmRun) func(Event) {
	return func(e Event) {
		if e.Kind == Started || e.Kind == Skipped || e.Kind == Failed {
			r.update(v, func(s *VMStatus) {
				s.Step, s.Title = e.Step, e.Title
				for i, st := range v.runner.Steps {
					if st.Name() == e.Step {
						s.StepIndex = i + 1
					}
				}
			})
		}
		r.emit(FleetEvent{VM: v.vm.Name, Group: v.status.Group, Event: e})
	}
}

func (r *FleetRun) groupEmitter(g Group) func(Event) {
	return func(e Event) { r.emit(FleetEvent{Group: g, Event: e}) }
}

// FleetOfHosts is the fleet the wizard's settings make when more hosts are
// listed beside the VM's: s's VM first, then one VM per host, each with s's
// VM keys but its own host (no pin, no internalIP: those are the first VM's
// alone), named by host. It is built as the answers file that says so would
// be (ParseFleet), which it also returns, to save for a replay.
func FleetOfHosts(s Settings, hosts []string) (Fleet, []byte, error) {
	if s.VM.Host == "" {
		return Fleet{}, nil, FieldError{Key: "vm.host", Problem: "is empty, but more hosts are listed: a fleet starts with the VM's host; fill it in, or empty the list"}
	}
	shared := s.VM
	shared.Host, shared.HostKeyFingerprint, shared.InternalIP = "", "", ""
	top := s
	top.VM = VM{}
	data, err := top.AnswersYAML("")
	if err != nil {
		return Fleet{}, nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Fleet{}, nil, err
	}
	if doc == nil {
		doc = map[string]any{}
	}
	delete(doc, "vm")
	def, err := toMap(shared)
	if err != nil {
		return Fleet{}, nil, err
	}
	base, err := toMap(Defaults().VM)
	if err != nil {
		return Fleet{}, nil, err
	}
	if m := nonDefault(def, base); len(m) > 0 {
		doc["vmDefaults"] = m
	}
	first := map[string]any{"host": s.VM.Host}
	if s.VM.HostKeyFingerprint != "" {
		first["hostKeyFingerprint"] = s.VM.HostKeyFingerprint
	}
	if s.VM.InternalIP != "" {
		first["internalIP"] = s.VM.InternalIP
	}
	vms := []any{first}
	for _, h := range hosts {
		if h = strings.TrimSpace(h); h != "" {
			vms = append(vms, map[string]any{"host": h})
		}
	}
	doc["vms"] = vms
	out, err := yaml.Marshal(doc)
	if err != nil {
		return Fleet{}, nil, err
	}
	f, err := ParseFleet("the wizard's settings", out)
	return f, out, err
}

// SaveFleetAnswers writes a fleet's answers file (FleetOfHosts's data) as
// workDir/answers.yaml, under the header SaveAnswers writes, and returns its path.
func SaveFleetAnswers(data []byte, workDir string) (string, error) {
	var b strings.Builder
	for _, l := range strings.Split(answersHeader(workDir), "\n") {
		b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
	b.Write(data)
	return saveAnswers([]byte(b.String()), workDir)
}
