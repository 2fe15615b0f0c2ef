package ui

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	tea "charm.land/bubbletea/v2"

	"github.com/vm2mesh/vm2mesh/remote"
	"github.com/vm2mesh/vm2mesh/steps"
)

// fleetSteps are the titles of a fleet VM's pipeline, as the real one's.
var fleetSteps = []string{"Generate the VM's files", "Check the VM", "Upload the files and the package", "Install the sidecar package",
	"Place the files on the VM", "Start the Istio agent", "Confirm the agent got its certificate"}

// scriptedFleet is a stand-in Fleet for UI tests: its script sets the VMs'
// statuses and emits their events; it touches no cluster and no VM. Retry
// runs the VM's last step and succeeds.
type scriptedFleet struct {
	mu      sync.Mutex
	st      []steps.VMStatus
	emit    func(steps.FleetEvent)
	script  func(f *scriptedFleet)
	block   bool          // Run waits for cancellation (or the test's end) after the script
	stop    chan struct{} // closed at the test's end
	retried []string
}

func newScriptedFleet(t *testing.T, names ...string) *scriptedFleet {
	f := &scriptedFleet{stop: make(chan struct{})}
	t.Cleanup(func() { close(f.stop) })
	for _, n := range names {
		f.st = append(f.st, steps.VMStatus{Name: n, State: steps.VMPending, Steps: len(fleetSteps), Group: steps.Group{Namespace: "shop", App: "web"}})
	}
	return f
}

func (f *scriptedFleet) Status() []steps.VMStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]steps.VMStatus(nil), f.st...)
}

// reach puts VM i at step n (from 1) in state, emitting the steps' events up
// to it and the logs given.
func (f *scriptedFleet) reach(i, n int, state steps.VMState, err error, logs ...string) {
	name := f.st[i].Name
	for s := 1; s <= n; s++ {
		f.mu.Lock()
		f.st[i].State, f.st[i].StepIndex, f.st[i].Title, f.st[i].Step = steps.VMRunning, s, fleetSteps[s-1], "step"
		f.mu.Unlock()
		f.emit(steps.FleetEvent{VM: name, Event: steps.Event{Kind: steps.Started, Title: fleetSteps[s-1]}})
		if s == n {
			for _, l := range logs {
				f.emit(steps.FleetEvent{VM: name, Event: steps.Event{Kind: steps.Log, Text: l}})
			}
			if state == steps.VMRunning {
				return
			}
		}
		if s == n && err != nil {
			f.mu.Lock()
			f.st[i].State, f.st[i].Err, f.st[i].Hint = state, err, steps.HintOf(err)
			f.mu.Unlock()
			f.emit(steps.FleetEvent{VM: name, Event: steps.Event{Kind: steps.Failed, Title: fleetSteps[s-1], Text: err.Error()}})
			return
		}
		f.emit(steps.FleetEvent{VM: name, Event: steps.Event{Kind: steps.Done, Title: fleetSteps[s-1], Text: "done"}})
	}
	f.mu.Lock()
	f.st[i].State = state
	f.mu.Unlock()
}

func (f *scriptedFleet) Run(ctx context.Context) []steps.VMStatus {
	f.script(f)
	if f.block {
		select {
		case <-ctx.Done():
		case <-f.stop:
		}
	}
	return f.Status()
}

func (f *scriptedFleet) Retry(ctx context.Context, name string) error {
	f.mu.Lock()
	f.retried = append(f.retried, name)
	f.mu.Unlock()
	for i := range f.st {
		if f.st[i].Name == name {
			f.mu.Lock()
			f.st[i].Err, f.st[i].Hint = nil, ""
			f.mu.Unlock()
			f.reach(i, len(fleetSteps), steps.VMDone, nil, "retried")
		}
	}
	return nil
}

func (f *scriptedFleet) Close() {}

// PrepareFleet asks about the fleet's unknown host keys (all side by side,
// when hostKeys is set), then hands out the scripted fleet.
func (e *scriptedEngine) PrepareFleet(ctx context.Context, fl steps.Fleet, h FleetHooks) (Fleet, error) {
	e.fleet.emit = h.Emit
	// The logins' events come before the fleet does, as the real one's.
	h.Emit(steps.FleetEvent{VM: e.fleet.st[0].Name, Event: steps.Event{Step: steps.ConnectStep, Kind: steps.Log, Text: "ssh: connecting"}})
	if e.hostKeys {
		var wg sync.WaitGroup
		e.decisions = make([]remote.HostKeyDecision, len(e.fleet.st))
		for i, st := range e.fleet.st {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.decisions[i], _ = h.HostKeys(steps.HostKeyQuestion{VM: st.Name, Host: "192.0.2." + string(rune('1'+i)), KeyType: "ssh-ed25519",
					Fingerprint: "SHA256:" + strings.Repeat(string(rune('a'+i)), 43)})
			}()
		}
		wg.Wait()
	}
	if e.err != nil {
		return nil, e.err
	}
	return e.fleet, nil
}

func fleetModel(t *testing.T, f *scriptedFleet, hostKeys bool) *Model {
	e := scripted(t)
	e.fleet, e.hostKeys = f, hostKeys
	var vms []steps.FleetVM
	for _, st := range f.st {
		vms = append(vms, steps.FleetVM{Name: st.Name})
	}
	return model(t, e, Options{Fleet: &steps.Fleet{VMs: vms}, Parallel: 4})
}

var fleetNames = []string{"web-1", "web-2", "web-3", "web-4", "web-5", "web-6", "web-7", "web-8", "db-1", "db-2", "db-3", "db-4"}

// A fleet of twelve mid-run: four done, two running, the rest waiting; the
// table scrolls at 60x16 and the log is the first running VM's.
func TestGoldenFleetRunning(t *testing.T) {
	goldenRun(t, func(t *testing.T) *Model {
		f := newScriptedFleet(t, fleetNames...)
		f.block = true
		f.script = func(f *scriptedFleet) {
			for i := range 4 {
				f.reach(i, len(fleetSteps), steps.VMDone, nil)
			}
			f.reach(5, 2, steps.VMRunning, nil, "os: Debian 12 (debian, amd64)")
			f.reach(4, 4, steps.VMRunning, nil, "Selecting previously unselected package istio-sidecar.", "Unpacking istio-sidecar (1.31.1) ...") // the last event
		}
		return fleetModel(t, f, false)
	}, true, "Unpacking istio-sidecar")
}

// One VM failed, the others done: its error and what to do are under the
// table, and r retries it.
func TestGoldenFleetOneFailed(t *testing.T) {
	goldenRun(t, func(t *testing.T) *Model {
		f := newScriptedFleet(t, fleetNames[:4]...)
		f.script = func(f *scriptedFleet) {
			f.reach(0, len(fleetSteps), steps.VMDone, nil)
			f.reach(1, 4, steps.VMFailed, steps.WithHint(errors.New("dpkg: error processing archive istio-sidecar.deb: cannot access archive"), "check package: in the answers file"),
				"dpkg -i /tmp/vm2mesh/istio-sidecar.deb")
			f.reach(2, len(fleetSteps), steps.VMDone, nil)
			f.reach(3, len(fleetSteps), steps.VMDone, nil)
		}
		return fleetModel(t, f, false)
	}, true, "r retry · q quit")
}

func TestGoldenFleetAllDone(t *testing.T) {
	goldenRun(t, func(t *testing.T) *Model {
		f := newScriptedFleet(t, fleetNames[:4]...)
		f.script = func(f *scriptedFleet) {
			for i := range 4 {
				f.reach(i, len(fleetSteps), steps.VMDone, nil)
			}
		}
		return fleetModel(t, f, false)
	}, true, "all 4 VMs are in the mesh")
}

// The unknown keys of VMs logging in together: one dialog, each fingerprint.
func TestGoldenFleetHostKeysDialog(t *testing.T) {
	goldenRun(t, func(t *testing.T) *Model {
		f := newScriptedFleet(t, fleetNames[:3]...)
		return fleetModel(t, f, true)
	}, false, "SHA256:ccc")
}

// The one dialog: refused unless accepted; space marks one VM, enter answers
// each VM as marked.
func TestFleetHostKeysDialogAnswersEachVM(t *testing.T) {
	f := newScriptedFleet(t, fleetNames[:3]...)
	f.script = func(*scriptedFleet) {}
	m := fleetModel(t, f, true)
	m.Init()
	pump(t, m, func() bool { return m.hostKeys.isOpen() })
	if n := len(m.hostKeys.asks); n != 3 {
		t.Fatalf("the dialog lists %d VMs, want the 3 logging in together:\n%s", n, plain(m))
	}
	press(m, "down")
	m.Update(tea.KeyPressMsg{Code: tea.KeySpace, Text: " "})
	press(m, "enter")
	pump(t, m, func() bool { return m.page == pageFleet })
	e := m.engine.(*scriptedEngine)
	want := []remote.HostKeyDecision{remote.RejectHost, remote.AcceptAndRemember, remote.RejectHost}
	for i, d := range e.decisions {
		if d != want[i] {
			t.Errorf("VM %d: %v, want %v", i, d, want[i])
		}
	}
}

// A failed VM is retried from the table: r on its row runs it again, and the
// page ends with every VM done.
func TestFleetRetryFromTheTable(t *testing.T) {
	f := newScriptedFleet(t, fleetNames[:3]...)
	f.script = func(f *scriptedFleet) {
		f.reach(0, len(fleetSteps), steps.VMDone, nil)
		f.reach(1, 3, steps.VMFailed, errors.New("upload failed"))
		f.reach(2, len(fleetSteps), steps.VMDone, nil)
	}
	m := fleetModel(t, f, false)
	m.Init()
	pump(t, m, func() bool { return m.page == pageFleet })
	press(m, "enter")
	pump(t, m, func() bool { return m.fleetPage.finished() })
	if st, _ := m.fleetPage.current(); st.Name != "web-2" || !strings.Contains(plain(m), "upload failed") {
		t.Fatalf("the failed VM is not the one shown:\n%s", plain(m))
	}
	press(m, "r")
	pump(t, m, func() bool { return m.fleetPage.finished() })
	if len(f.retried) != 1 || f.retried[0] != "web-2" || !strings.Contains(plain(m), "all 3 VMs are in the mesh") {
		t.Fatalf("retried %v:\n%s", f.retried, plain(m))
	}
	_, cmd := m.Update(tea.KeyPressMsg{Code: 'q', Text: "q"})
	if cmd == nil || m.Outcome != nil {
		t.Errorf("q after all done: outcome %v", m.Outcome)
	}
}

// More hosts listed on the VM page make a fleet: its preflight, its table;
// esc on its plan goes back to the settings with the hosts kept.
func TestSettingsWithMoreHostsRunAFleet(t *testing.T) {
	m := settingsModel(t)
	e := m.engine.(*scriptedEngine)
	e.fleet = newScriptedFleet(t, "10.0.0.1", "10.0.0.2", "10.0.0.3")
	m.Init()
	m.form.s.VM.Host, m.form.moreHosts = "10.0.0.1", "10.0.0.2\n\n 10.0.0.3 \n"
	m.settings = m.form.settings()
	m.startSettings()
	pump(t, m, func() bool { return m.page == pageFleet })
	if m.opts.Fleet == nil || strings.Join(m.opts.Fleet.Names(), ",") != "10.0.0.1,10.0.0.2,10.0.0.3" {
		t.Fatalf("the fleet: %+v", m.opts.Fleet)
	}
	if view := plain(m); !strings.Contains(view, "a fleet of 3 VMs") || !strings.Contains(view, "esc settings") {
		t.Errorf("the fleet's plan:\n%s", view)
	}
	m.Update(tea.KeyPressMsg{Code: tea.KeyEscape})
	if m.page != pageSettings || m.opts.Fleet != nil || m.form.moreHosts != "10.0.0.2\n\n 10.0.0.3 \n" {
		t.Errorf("esc: page %d, fleet %v, hosts %q", m.page, m.opts.Fleet, m.form.moreHosts)
	}
	// The VM's host left empty: the list cannot make a fleet, and says so.
	m.form.s.VM.Host, m.form.action = "", actionApply
	if err := m.form.hostsCheck(""); err == nil || !strings.Contains(err.Error(), "vm.host") {
		t.Errorf("more hosts without the VM's: %v", err)
	}
}

// The fleet the settings made is saved as its answers file when applied, and
// the page says how to replay it.
func TestSettingsFleetIsSavedForAReplay(t *testing.T) {
	m := settingsModel(t)
	e := m.engine.(*scriptedEngine)
	e.fleet = newScriptedFleet(t, "10.0.0.1", "10.0.0.2")
	e.fleet.script = func(f *scriptedFleet) {}
	m.Init()
	m.form.s.VM.Host, m.form.moreHosts = "10.0.0.1", "10.0.0.2"
	m.settings = m.form.settings()
	m.startSettings()
	pump(t, m, func() bool { return m.page == pageFleet })
	press(m, "enter")
	pump(t, m, func() bool { return m.fleetPage.finished() })
	path := m.fleetPage.replay
	if path == "" || !strings.Contains(plain(m), "replay: vm2mesh apply -f ") {
		t.Fatalf("no replay line:\n%s", plain(m))
	}
	f, err := steps.LoadFleet(context.Background(), path, nil)
	if err != nil || strings.Join(f.Names(), ",") != "10.0.0.1,10.0.0.2" {
		t.Errorf("the saved answers: %v, %v", f.Names(), err)
	}
}
