package app_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
	"github.com/vm2mesh/vm2mesh/internal/testvm"
)

// tmuxSession runs the real binary in a tmux server of the test's own, 80x24.
type tmuxSession struct {
	t      *testing.T
	socket string
}

func startTmux(t *testing.T, command string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (hack/test installs it)")
	}
	// A socket in the test's temp dir: a tmux server of its own, nothing left behind.
	s := &tmuxSession{t: t, socket: filepath.Join(t.TempDir(), "tmux.sock")}
	if out, err := exec.Command("tmux", "-S", s.socket, "new-session", "-d", "-s", "wiz", "-x", "80", "-y", "24",
		"env TERM=xterm-256color "+command+"; echo EXIT=$?; sleep 600").CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", s.socket, "kill-server").Run() })
	return s
}

func (s *tmuxSession) screen() string {
	out, _ := exec.Command("tmux", "-S", s.socket, "capture-pane", "-p", "-t", "wiz").Output()
	return string(out)
}

func (s *tmuxSession) keys(keys ...string) {
	args := append([]string{"-S", s.socket, "send-keys", "-t", "wiz"}, keys...)
	if out, err := exec.Command("tmux", args...).CombinedOutput(); err != nil {
		s.t.Fatalf("send-keys: %v: %s", err, out)
	}
}

// waitFor waits until the screen shows text, and returns the screen.
func (s *tmuxSession) waitFor(text string, timeout time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if screen := s.screen(); strings.Contains(screen, text) {
			return screen
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.t.Fatalf("the screen never showed %q; it shows:\n%s", text, s.screen())
	return ""
}

func TestWizardInTmuxOnboardsAVMEndToEnd(t *testing.T) {
	testvm.Skip(t)
	istioInstalled(t)
	vm := testvm.Start(t, testvm.Options{})
	ns := testcluster.UniqueName("wizard")
	cluster.RootCertWriterStandIn(t, "ROOT CERT OF THE MESH", ns)
	// No istiod (the stand-in agent connects to none): its autoregistration
	// stands in, so vm-verify finds the VM's WorkloadEntry.
	cluster.CreateNamespace(t, ns)
	autoregisteredEntryStandIn(t, ns, vm.Addr)
	testvm.GatewayWithoutIstiodStandIn(t, vm.HostAddr)
	path, workDir := answers(t, ns, "gatewayAddress: "+vm.HostAddr, "vm:",
		"  host: "+vm.Addr,
		"  user: root",
		"  identityFile: "+vm.ClientKey,
		"  sshConfig: "+filepath.Join(t.TempDir(), "no-ssh-config"),
		"  knownHostsFile: "+filepath.Join(t.TempDir(), "known_hosts"),
		"  package: "+standInPackages(t).Deb,
		"  agentWait: 30")
	s := startTmux(t, fmt.Sprintf("%s -f %s", binary, path))

	// The settings pages come pre-filled from the answers file: walk through
	// every field with enter.
	s.waitFor("Kube context", 20*time.Second)
	for i := 0; i < 30 && !strings.Contains(s.screen(), "Plan"); i++ {
		if strings.Contains(s.screen(), "not in known_hosts") || strings.Contains(s.screen(), "Unknown host") {
			break
		}
		s.keys("Enter")
		time.Sleep(300 * time.Millisecond)
	}
	// First contact with the VM: the host key dialog shows its fingerprint.
	screen := s.waitFor("Unknown host", 30*time.Second)
	if !strings.Contains(screen, vm.Fingerprint[:20]) {
		t.Errorf("the host key dialog does not show the fingerprint %s:\n%s", vm.Fingerprint, screen)
	}
	s.keys("y")
	screen = s.waitFor("nothing changes until you press enter", 60*time.Second)
	for _, want := range []string{"Install the Istio control plane (skip: already done)", "Expose istiod through the gateway", "Place the files on the VM"} {
		if !strings.Contains(screen, want) {
			t.Errorf("plan lacks %q:\n%s", want, screen)
		}
	}
	s.keys("Enter")
	screen = s.waitFor("✓ Done", 2*time.Minute)
	for _, want := range []string{"kubectl get workloadentries -n " + ns, "joined:"} {
		if !strings.Contains(screen, want) {
			t.Errorf("summary lacks %q:\n%s", want, screen)
		}
	}
	assertOnboarded(t, vm, workDir)
	s.keys("q")
	s.waitFor("EXIT=0", 10*time.Second)
}

func TestWizardHonoursNoColorAndRefusesDumbTerminals(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cluster.WriteKubeconfig(kubeconfig, "any"); err != nil {
		t.Fatal(err)
	}
	s := startTmux(t, fmt.Sprintf("env NO_COLOR=1 %s --kubeconfig %s", binary, kubeconfig))
	s.waitFor("Kube context", 20*time.Second)
	out, err := exec.Command("tmux", "-S", s.socket, "capture-pane", "-e", "-p", "-t", "wiz").Output()
	if err != nil {
		t.Fatal(err)
	}
	// Bold, faint and the default-colour resets (39, 49) may stay; colours may not.
	for _, m := range regexp.MustCompile(`\x1b\[([0-9;]*)m`).FindAllStringSubmatch(string(out), -1) {
		for _, p := range strings.Split(m[1], ";") {
			n, _ := strconv.Atoi(p)
			if (n >= 30 && n <= 38) || (n >= 40 && n <= 48) || (n >= 90 && n <= 97) || (n >= 100 && n <= 107) {
				t.Fatalf("NO_COLOR screen has colour escape %q:\n%q", m[0], out)
			}
		}
	}

	dumb := startTmux(t, "env TERM=dumb "+binary)
	_ = dumb // startTmux sets TERM=xterm-256color first; TERM=dumb wins
	dumb.waitFor("the wizard needs an interactive terminal", 10*time.Second)
	dumb.waitFor("EXIT=1", 5*time.Second)

	r := run(t, nil) // no arguments, stdin not a terminal
	if r.code != 1 || !strings.Contains(r.stderr, "run `vm2mesh apply -f answers.yaml` instead") {
		t.Errorf("without a terminal: exit %d\n%s", r.code, r.stderr)
	}
}
