package steps

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vm2mesh/vm2mesh/remote"
)

const fleetAnswers = `workDir: /srv/fleet
app: web
namespace: shop
vmDefaults:
  user: admin
  identityFile: /keys/id
  package: /pkgs/istio-sidecar.deb
  agentWait: 30
vms:
  - host: 10.0.0.1
  - name: db-1
    host: db.internal
    app: db
    user: root
    internalIP: 10.0.0.2
  - name: web-2
    host: 10.0.0.3
    package: /pkgs/istio-sidecar.rpm
`

func TestParseFleetMergesDefaultsAndOverrides(t *testing.T) {
	f, err := ParseFleet("answers.yaml", []byte(fleetAnswers))
	if err != nil {
		t.Fatal(err)
	}
	if f.Single || len(f.VMs) != 3 {
		t.Fatalf("single %v, %d VMs", f.Single, len(f.VMs))
	}
	if got := strings.Join(f.Names(), ","); got != "10.0.0.1,db-1,web-2" {
		t.Errorf("names %s", got)
	}
	web1, db, web2 := f.VMs[0].Settings, f.VMs[1].Settings, f.VMs[2].Settings
	if web1.VM.User != "admin" || web1.VM.IdentityFile != "/keys/id" || web1.VM.AgentWait != 30 || web1.App != "web" {
		t.Errorf("first VM: %+v", web1.VM)
	}
	if db.VM.User != "root" || db.App != "db" || db.Namespace != "shop" || db.VM.InternalIP != "10.0.0.2" || db.VM.IdentityFile != "/keys/id" {
		t.Errorf("db-1: app %s, %+v", db.App, db.VM)
	}
	if web2.VM.Package != "/pkgs/istio-sidecar.rpm" {
		t.Errorf("web-2's package: %s", web2.VM.Package)
	}
	if db.WorkDir != filepath.Join("/srv/fleet", "vms", "db-1") {
		t.Errorf("db-1's workDir %s", db.WorkDir)
	}
	groups := f.Groups()
	if len(groups) != 2 || groups[0].String() != "shop/web" || groups[1].String() != "shop/db" {
		t.Errorf("groups %v", groups)
	}
	gs := f.GroupSettings(groups[1])
	if gs.App != "db" || gs.VM.Host != "" || gs.WorkDir != "/srv/fleet/groups/shop.vm.db" {
		t.Errorf("group settings: app %s, host %q, workDir %s", gs.App, gs.VM.Host, gs.WorkDir)
	}
	only, err := f.Limit("web-2, db-1")
	if err != nil || strings.Join(only.Names(), ",") != "db-1,web-2" {
		t.Errorf("--limit: %v %v", only.Names(), err)
	}
	if _, err := f.Limit("db-1,nope"); err == nil || !strings.Contains(err.Error(), `"nope" is not in the answers file, which has 10.0.0.1, db-1, web-2`) {
		t.Errorf("--limit nope: %v", err)
	}
}

func TestParseFleetKeepsVMFilesAsTheFleetOfOne(t *testing.T) {
	f, err := ParseFleet("a.yaml", []byte("workDir: /srv/one\nvm:\n  host: 10.0.0.9\n  user: root\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !f.Single || len(f.VMs) != 1 || f.VMs[0].Settings.WorkDir != "/srv/one" || f.VMs[0].Name != "10.0.0.9" {
		t.Fatalf("%+v", f)
	}
	if f.VMs[0].Settings.Hash() != f.Settings.Hash() {
		t.Error("the fleet of one's settings differ from the file's: its saved progress would be lost")
	}
	s, err := ParseAnswers("a.yaml", []byte(fleetAnswers))
	if err == nil || !strings.Contains(err.Error(), "lists 3 VMs under vms:") {
		t.Errorf("ParseAnswers of a fleet: %v %+v", err, s.VM)
	}
}

func TestParseFleetRefusals(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"both", "vm:\n  host: a\nvms:\n  - host: b\n", "has both vm: and vms:"},
		{"defaults alone", "vmDefaults:\n  user: root\n", "there is no vms:"},
		{"empty list", "vms: []\n", "vms: lists no VM"},
		{"duplicate", "vms:\n  - host: a\n  - host: b\n    name: a\n", `vms[1].name: "a" is the name of vms[0] too`},
		{"no host", "vms:\n  - name: x\n", "vms[0].host: must be set"},
		{"bad name", "vms:\n  - host: a\n    name: Web_1\n", `vms[0].name: "Web_1" is not usable`},
		{"host as name", "vms:\n  - host: My_Host\n", `vms[0].name: is not given, and the host "My_Host"`},
		{"bad override", "vms:\n  - host: a\n    namespace: Bad\n", "vms[0].namespace: \"Bad\" is not a valid name"},
		{"bad vm key", "vms:\n  - host: a\n    port: 99999\n", "vms[0].port: 99999 is not a TCP port"},
		{"unknown key", "vms:\n  - host: a\n    hots: b\n", `unknown key "hots"`},
		{"unknown default", "vmDefaults:\n  name: x\nvms:\n  - host: a\n", `unknown key "name"`},
		{"null", "vms:\n  - host: a\n    user:\n", "vms[0].user: has no value"},
		{"split group", "clusterNetwork: n\nvmNetwork: v\nvms:\n  - host: a\n  - host: b\n    vmNetwork: w\n", "vms[1].vmNetwork: \"w\" differs from \"v\" of vms[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFleet("a.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// With HostKeys set, the VMs of a fleet ask about their unknown keys side by
// side (each with its name), not one after the other as the other prompts do:
// a UI gathers them into one dialog.
func TestFleetHostKeysAreAskedTogether(t *testing.T) {
	f, err := ParseFleet("answers.yaml", []byte(fleetAnswers))
	if err != nil {
		t.Fatal(err)
	}
	asked := make(chan HostKeyQuestion, len(f.VMs))
	release := make(chan struct{})
	r := &FleetRun{Fleet: f, Prompts: Prompts{HostKey: func(string, string, string) (remote.HostKeyDecision, error) {
		t.Error("Prompts.HostKey was asked though HostKeys is set")
		return remote.RejectHost, nil
	}}, HostKeys: func(q HostKeyQuestion) (remote.HostKeyDecision, error) {
		asked <- q
		<-release // the dialog is answered once every VM has asked
		return remote.AcceptOnce, nil
	}}
	var wg sync.WaitGroup
	for _, vm := range f.VMs {
		p := r.prompts(&vmRun{vm: vm, status: VMStatus{Name: vm.Name}})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d, err := p.HostKey(vm.Settings.VM.Host, "ssh-ed25519", "SHA256:"+vm.Name); err != nil || d != remote.AcceptOnce {
				t.Errorf("%s: %v, %v", vm.Name, d, err)
			}
		}()
	}
	got := map[string]string{}
	for range f.VMs {
		select {
		case q := <-asked:
			got[q.VM] = q.Host + " " + q.Fingerprint
		case <-time.After(5 * time.Second):
			t.Fatalf("the questions were not asked together; asked so far: %v", got)
		}
	}
	close(release)
	wg.Wait()
	want := map[string]string{"10.0.0.1": "10.0.0.1 SHA256:10.0.0.1", "db-1": "db.internal SHA256:db-1", "web-2": "10.0.0.3 SHA256:web-2"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: asked %q, want %q", k, got[k], v)
		}
	}
}

// failingStepStandIn is a stand-in step: it fails while fail is set.
type failingStepStandIn struct {
	name string
	fail *bool
	runs int
}

func (s *failingStepStandIn) Name() string                                { return s.name }
func (s *failingStepStandIn) Title() string                               { return "Stand-in " + s.name }
func (s *failingStepStandIn) Check(context.Context, *Env) (Status, error) { return Status{}, nil }
func (s *failingStepStandIn) Plan(*Env) ([]Action, error)                 { return nil, nil }
func (s *failingStepStandIn) Run(context.Context, *Env, *Output) error {
	s.runs++
	if *s.fail {
		return errors.New("stand-in failure")
	}
	return nil
}

// The wizard's single VM runs as the fleet of one: Run fails it at its step,
// Retry with that step in Skip goes on past it, as a Runner's Skip does.
func TestFleetOfOneRunsRetriesAndSkips(t *testing.T) {
	fail := true
	a, b := &failingStepStandIn{name: "a", fail: new(bool)}, &failingStepStandIn{name: "b", fail: &fail}
	var events []FleetEvent
	s := Defaults()
	s.WorkDir = t.TempDir()
	r := FleetOfOne(s, &Env{WorkDir: s.WorkDir, Settings: s}, []Step{a, b}, func(e FleetEvent) { events = append(events, e) })
	st := r.Run(context.Background())[0]
	if st.State != VMFailed || st.Step != "b" || st.StepIndex != 2 || st.Err == nil {
		t.Fatalf("after Run: %+v", st)
	}
	r.Skip = map[string]bool{"b": true}
	if err := r.Retry(context.Background(), "vm"); err != nil {
		t.Fatal(err)
	}
	if st := r.Status()[0]; st.State != VMDone || b.runs != 1 {
		t.Errorf("after Retry skipping b: %+v, b ran %d times", st, b.runs)
	}
	if len(events) == 0 || events[0].VM != "vm" {
		t.Errorf("events: %+v", events)
	}
}

// More hosts listed in the wizard beside the VM's make a fleet: the first VM
// keeps its pin, the others share its other VM keys, each named by host.
func TestFleetOfHostsIsTheFleetItsAnswersSay(t *testing.T) {
	s := Defaults()
	s.WorkDir, s.App = "/srv/w", "web"
	s.VM.Host, s.VM.User, s.VM.IdentityFile, s.VM.HostKeyFingerprint, s.VM.Package = "10.0.0.1", "admin", "/keys/id", "SHA256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "/p/istio-sidecar.deb"
	f, data, err := FleetOfHosts(s, []string{"10.0.0.2", " ", "web-3.internal"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Single || strings.Join(f.Names(), ",") != "10.0.0.1,10.0.0.2,web-3.internal" {
		t.Fatalf("names %v:\n%s", f.Names(), data)
	}
	if v := f.VMs[0].Settings.VM; v.HostKeyFingerprint != "SHA256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" || v.User != "admin" {
		t.Errorf("first VM: %+v", v)
	}
	if v := f.VMs[2].Settings; v.VM.HostKeyFingerprint != "" || v.VM.User != "admin" || v.VM.IdentityFile != "/keys/id" || v.VM.Package != "/p/istio-sidecar.deb" || v.App != "web" ||
		v.WorkDir != filepath.Join("/srv/w", "vms", "web-3.internal") {
		t.Errorf("third VM: %+v\n%s", v, data)
	}
	s.VM.Host = ""
	if _, _, err := FleetOfHosts(s, []string{"10.0.0.2"}); err == nil || !strings.Contains(err.Error(), "vm.host") {
		t.Errorf("no first host: %v", err)
	}
}

// While one VM's question is open, the other VMs' events go on: a VM that
// emits an event would otherwise stop at its step until the operator answers.
func TestFleetEventsGoOnWhileAQuestionIsOpen(t *testing.T) {
	f, err := ParseFleet("answers.yaml", []byte(fleetAnswers))
	if err != nil {
		t.Fatal(err)
	}
	asked, release := make(chan struct{}), make(chan struct{})
	r := &FleetRun{Fleet: f, Emit: func(FleetEvent) {}, Prompts: Prompts{Sudo: func(user, host string) (string, error) {
		close(asked)
		<-release
		return "", errors.New("not answered")
	}}}
	p := r.prompts(&vmRun{vm: f.VMs[0], status: VMStatus{Name: f.VMs[0].Name}})
	go p.Sudo("admin", f.VMs[0].Settings.VM.Host)
	defer close(release)
	<-asked
	emitted := make(chan struct{})
	go func() {
		r.emit(FleetEvent{VM: f.VMs[1].Name, Event: Event{Kind: Log, Text: "still going"}})
		close(emitted)
	}()
	select {
	case <-emitted:
	case <-time.After(5 * time.Second):
		t.Fatal("another VM's event waited for the open question")
	}
}

// A --limit that leaves out every VM of a group still leaves a VM out: what all
// groups share (istiod's exposure) is in use, though every listed group is whole.
func TestLimitLeavingOutAWholeGroupLeavesVMsOut(t *testing.T) {
	f, err := ParseFleet("answers.yaml", []byte(fleetAnswers))
	if err != nil {
		t.Fatal(err)
	}
	if f.LeftOut() {
		t.Error("the whole fleet leaves no VM out")
	}
	db, err := f.Limit("db-1") // group db alone; web's two VMs left out
	if err != nil {
		t.Fatal(err)
	}
	if gs := db.Groups(); len(gs) != 1 || !db.Whole(gs[0]) || !db.LeftOut() {
		t.Errorf("--limit db-1: groups %v, whole %v, left out %v; want db alone, whole, and VMs left out", gs, db.Whole(gs[0]), db.LeftOut())
	}
}

// overlapStepStandIn is a stand-in step that counts how many of its runs
// overlap, and fails while fail is set.
type overlapStepStandIn struct {
	name                string
	fail                atomic.Bool
	runs, running, most atomic.Int32
}

func (s *overlapStepStandIn) Name() string                                { return s.name }
func (s *overlapStepStandIn) Title() string                               { return "Stand-in " + s.name }
func (s *overlapStepStandIn) Check(context.Context, *Env) (Status, error) { return Status{}, nil }
func (s *overlapStepStandIn) Plan(*Env) ([]Action, error)                 { return nil, nil }
func (s *overlapStepStandIn) Run(context.Context, *Env, *Output) error {
	s.runs.Add(1)
	n := s.running.Add(1)
	defer s.running.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	time.Sleep(50 * time.Millisecond)
	if s.fail.Load() {
		return errors.New("stand-in failure")
	}
	return nil
}

// Retrying two VMs of one failed group runs its cluster half once, and a VM
// retried twice at once (a key pressed twice) runs once: the second is refused.
func TestFleetRetriesNeverRunAPipelineTwiceAtOnce(t *testing.T) {
	group, vmStep := &overlapStepStandIn{name: "group-half"}, &overlapStepStandIn{name: "vm-half"}
	group.fail.Store(true)
	newEnv := func() *Env {
		s := Defaults()
		s.WorkDir = t.TempDir()
		return &Env{WorkDir: s.WorkDir, Settings: s}
	}
	g := &groupRun{group: Group{Namespace: "ns", App: "a"}, runner: &Runner{Steps: []Step{group}, Env: newEnv()}}
	r := &FleetRun{Fleet: Fleet{}, groups: []*groupRun{g}}
	for _, name := range []string{"a1", "a2"} {
		v := &vmRun{vm: FleetVM{Name: name}, group: g, status: VMStatus{Name: name, State: VMPending}}
		v.runner = &Runner{Steps: []Step{vmStep}, Env: newEnv(), Emit: r.vmEmitter(v)}
		r.vms = append(r.vms, v)
	}
	for _, st := range r.Run(context.Background()) {
		if st.State != VMFailed {
			t.Fatalf("%s after a failed group: %s", st.Name, st.State)
		}
	}
	group.fail.Store(false)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, name := range []string{"a1", "a2", "a1"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 10 * time.Millisecond)
			errs[i] = r.Retry(context.Background(), name)
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || errs[2] == nil || !strings.Contains(errs[2].Error(), "a1 is running") {
		t.Errorf("retries: %v; want a1 and a2 run and the second a1 refused", errs)
	}
	if group.runs.Load() != 2 || group.most.Load() != 1 || vmStep.runs.Load() != 2 {
		t.Errorf("the group's half ran %d times (%d at once), the VMs' %d times; want it run once more, alone, and each VM once", group.runs.Load(), group.most.Load(), vmStep.runs.Load())
	}
	for _, st := range r.Status() {
		if st.State != VMDone {
			t.Errorf("%s after its retry: %s", st.Name, st.State)
		}
	}
}
