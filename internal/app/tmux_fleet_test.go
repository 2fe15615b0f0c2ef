package app_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
)

// A fleet of two in the wizard: their unknown host keys in one dialog, the
// table of VMs, and a VM that failed (a wrong sudo password in its file)
// retried from the table once the file is fixed, after the other finished.
func TestWizardInTmuxRetriesAFailedVMOfAFleet(t *testing.T) {
	testvm.Skip(t)
	istioInstalled(t)
	vms := startFleet(t, 2)
	path, workDir, _ := fleetAnswers(t, vms)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// No pins: the keys are asked; vm-2 (the last entry) logs in as admin,
	// whose sudo wants a password, and its file holds a wrong one.
	pw := filepath.Join(t.TempDir(), "sudo-pw")
	if err := os.WriteFile(pw, []byte("not-it\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if !strings.HasPrefix(l, "    hostKeyFingerprint: ") {
			lines = append(lines, l)
		}
	}
	lines = append(lines, "    user: "+testvm.UserPasswordSudo, "    sudoPasswordFile: "+pw)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "wizard.log")
	s := startTmux(t, fmt.Sprintf("%s -f %s --parallel 2 --log-file %s", binary, path, logFile))

	// The VMs log in side by side: their unknown keys are asked together
	// (in one dialog when they come within its window, as they do here).
	screen := s.waitFor("Unknown host key", 60*time.Second)
	seen := screen
	for i := 0; i < 2 && !strings.Contains(screen, "enter apply"); i++ {
		s.keys("y")
		time.Sleep(500 * time.Millisecond)
		screen = s.screen()
		seen += screen
	}
	for _, vm := range vms {
		if !strings.Contains(seen, vm.Fingerprint) {
			t.Errorf("the host key dialog did not show %s:\n%s", vm.Fingerprint, seen)
		}
	}
	if !strings.Contains(seen, "Unknown host keys of 2 VMs") {
		t.Logf("the keys came in two dialogs:\n%s", seen)
	}
	// The plan: vm-1 logged in, vm-2 failed at its login already.
	screen = s.waitFor("enter apply", 60*time.Second)
	if !strings.Contains(screen, "vm-1") || !strings.Contains(screen, "vm-2") {
		t.Errorf("the plan's table lacks a VM:\n%s", screen)
	}
	s.keys("Enter")
	screen = s.waitFor("Failed: 1 of 2 VMs in the mesh", 2*time.Minute)
	if !strings.Contains(screen, "sudo refused the password for admin") || !strings.Contains(screen, "r retry") {
		t.Fatalf("the failed VM's error is not shown, or it cannot be retried:\n%s", screen)
	}
	// Fix the cause, then retry vm-2 from the table (selected: it failed).
	if err := os.WriteFile(pw, []byte(testvm.SudoPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.keys("r")
	s.waitFor("Done: all 2 VMs are in the mesh", 2*time.Minute)
	assertOnboarded(t, vms[0], filepath.Join(workDir, "vms", "vm-1"))
	s.keys("q")
	s.waitFor("EXIT=0", 10*time.Second)
	if got := vms[1].MustExec(t, "cat /var/run/secrets/tokens/istio-token"); got == "" {
		t.Error("vm-2 holds no token after the retry")
	}
	// The log tells each VM's events by its name, and the retry.
	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"asked: unknown host key of vm-1", "vm vm-1: step vm-verify: done", "retry vm-2", "vm vm-2: step vm-verify: done"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the log file lacks %q:\n%s", want, log)
		}
	}
}

// The wizard's fleet flags and a fleet's answers are checked before it needs
// a terminal, as apply checks them.
func TestWizardChecksAFleetBeforeTheTerminal(t *testing.T) {
	dir := t.TempDir()
	fleet := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(fleet, []byte("workDir: "+filepath.Join(dir, "w")+"\nvms:\n  - name: a\n    host: 192.0.2.1\n  - name: b\n    host: 192.0.2.2\n    port: 70000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("workDir: "+filepath.Join(dir, "w")+"\nvms:\n  - name: a\n    host: 192.0.2.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	one := filepath.Join(dir, "one.yaml")
	if err := os.WriteFile(one, []byte("vm:\n  host: 192.0.2.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--parallel", "0"}, "--parallel 0: give how many VMs run at once"},
		{[]string{"-f", one, "--limit", "a"}, "--limit picks VMs of a fleet"},
		{[]string{"-f", good, "--limit", "c"}, `--limit: "c" is not in the answers file`},
		{[]string{"-f", fleet}, "vms[1].port"},
	} {
		r := run(t, nil, tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "interactive terminal") {
			t.Errorf("vm2mesh %s: exit %d, want 1 and %q:\n%s", strings.Join(tc.args, " "), r.code, tc.want, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "w")); err == nil {
		t.Error("the fleet's workDir was made")
	}
	// A good fleet without a terminal is refused as it was found: its
	// existing workDir is not tightened for a run that does not happen.
	if err := os.Mkdir(filepath.Join(dir, "w"), 0o755); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(dir, "istio-sidecar.deb")
	complete := filepath.Join(dir, "complete.yaml")
	if err := os.WriteFile(pkg, []byte("!<arch>\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(complete, []byte("workDir: "+filepath.Join(dir, "w")+"\nkubeconfig: "+cluster.Kubeconfig+"\nvmDefaults:\n  package: "+pkg+"\nvms:\n  - name: a\n    host: 192.0.2.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, nil, "-f", complete); r.code != 1 || !strings.Contains(r.stderr, "interactive terminal") {
		t.Errorf("a good fleet without a terminal: exit %d\n%s", r.code, r.stderr)
	}
	if st, err := os.Stat(filepath.Join(dir, "w")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("the workDir of a refused run: %v %v, want 0755 as it was", st.Mode(), err)
	}
}
