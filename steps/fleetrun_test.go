package steps_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vm2mesh/vm2mesh/steps"
)

// The engine a UI drives: events carry the VM's name (or the group's),
// Status is read while the VMs run, each VM gets a token of its own, and a
// second run finds the VMs done without running them; Retry runs one again.
// --only cluster: no VM is contacted.
func TestFleetRunForAUI(t *testing.T) {
	istioCRDs(t)
	cluster.CreateConfigMap(t, "istio-fleet", "istio", map[string]string{"mesh": "defaultConfig:\n  meshId: mesh1\n"})
	cluster.RootCertWriterStandIn(t, "CERT", "fleet")
	workDir := filepath.Join(t.TempDir(), "work")
	yaml := "kubeconfig: " + cluster.Kubeconfig + "\nistioNamespace: istio-fleet\nnamespace: fleet\ninstallIstio: never\ngatewayAddress: 192.0.2.10\nworkDir: " + workDir +
		"\nvms:\n  - name: a\n    host: 192.0.2.11\n  - name: b\n    host: 192.0.2.12\n    app: other\n  - name: c\n    host: 192.0.2.13\n"
	fleet, err := steps.ParseFleet("fleet.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var events []steps.FleetEvent // Emit is called one event at a time
	run := &steps.FleetRun{Fleet: fleet, Only: steps.HalfCluster, Parallel: 2, Emit: func(e steps.FleetEvent) { events = append(events, e) }}
	if _, err := run.Check(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := run.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a UI's table, redrawn while the VMs run
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
				_ = run.Status()
			}
		}
	}()
	sts := run.Run(ctx)
	close(done)
	wg.Wait()
	for _, st := range sts {
		if st.State != steps.VMDone || st.Step != "vm-files" || st.StepIndex != 1 || st.Steps != 1 {
			t.Errorf("%s: %+v", st.Name, st)
		}
	}
	groups, vms := map[string]bool{}, map[string]bool{}
	for _, e := range events {
		if e.VM == "" {
			groups[e.Group.String()] = true
		} else {
			vms[e.VM] = true
		}
	}
	if len(groups) != 2 || !groups["fleet/demo"] || !groups["fleet/other"] || len(vms) != 3 {
		t.Errorf("events of groups %v and VMs %v", groups, vms)
	}
	ta, _ := os.ReadFile(filepath.Join(workDir, "vms", "a", "istio-token"))
	tc, _ := os.ReadFile(filepath.Join(workDir, "vms", "c", "istio-token"))
	if len(ta) == 0 || bytes.Equal(ta, tc) {
		t.Error("a and c of one group do not have tokens of their own")
	}

	again := &steps.FleetRun{Fleet: fleet, Only: steps.HalfCluster}
	if err := again.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if len(again.Runners()) != 0 {
		t.Errorf("a second run would run %d pipelines; every VM is done", len(again.Runners()))
	}
	for _, st := range again.Run(ctx) {
		if st.State != steps.VMDoneBefore {
			t.Errorf("second run: %s %s", st.Name, st.State)
		}
	}
	if err := again.Retry(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if st := again.Status()[1]; st.Name != "b" || st.State != steps.VMDone || st.Result.Skipped != 1 {
		t.Errorf("b retried: %+v", st)
	}
	if err := again.Retry(ctx, "nope"); err == nil {
		t.Error("Retry of a VM the fleet lacks")
	}
}
