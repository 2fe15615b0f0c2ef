package app_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

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
	logFile := filepath.Join(t.TempDir(), "wizard.log")
	s := startTmux(t, fmt.Sprintf("%s -f %s --log-file %s", binary, path, logFile))

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
	if !strings.Contains(screen, "kubectl get workloadentries -n "+ns) {
		t.Errorf("summary lacks the check:\n%s", screen)
	}
	// The steps' notes follow what to do next: the last one, scrolled to.
	s.keys("NPage", "NPage")
	s.waitFor("joined:", 10*time.Second)
	assertOnboarded(t, vm, workDir)
	s.keys("q")
	s.waitFor("EXIT=0", 10*time.Second)
	// The log tells the remote commands too (as their errors show them).
	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"asked: Unknown host", "remote: ", "step vm-verify: done"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the log file lacks %q:\n%s", want, log)
		}
	}
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

// twoContexts writes a kubeconfig with two contexts: one, current, whose API
// server is a closed loopback port, and two, the test cluster. A run that used
// any context but two would fail.
func twoContexts(t *testing.T) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(cluster.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	real := cfg.Contexts[cfg.CurrentContext]
	cfg.Clusters["dead"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1", CertificateAuthorityData: cfg.Clusters[real.Cluster].CertificateAuthorityData}
	cfg.Contexts = map[string]*clientcmdapi.Context{
		"one": {Cluster: "dead", AuthInfo: real.AuthInfo},
		"two": {Cluster: real.Cluster, AuthInfo: real.AuthInfo},
	}
	cfg.CurrentContext = "one"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// throwawayKey writes a private key of no host's, for a VM that is never reached.
func throwawayKey(t *testing.T) string {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "vm2mesh tmux test")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// enterUntil presses enter (a field at a time) until the screen shows text.
func (s *tmuxSession) enterUntil(text string) string {
	s.t.Helper()
	for i := 0; i < 40; i++ {
		if screen := s.screen(); strings.Contains(screen, text) {
			return screen
		}
		s.keys("Enter")
		time.Sleep(300 * time.Millisecond)
	}
	return s.waitFor(text, 30*time.Second)
}

// planTitles are the step titles of the plan page's list, in order.
func planTitles(screen string) []string {
	var out []string
	for _, l := range strings.Split(screen, "\n") {
		if strings.HasPrefix(l, "──") {
			break
		}
		l = strings.TrimSpace(strings.TrimLeft(l, " ›"))
		for _, mark := range []string{"→ ", "· "} {
			if strings.HasPrefix(l, mark) {
				out = append(out, strings.TrimSuffix(strings.TrimPrefix(l, mark), " (skip: already done)"))
			}
		}
	}
	return out
}

// The wizard as an operator lives in it: --context picks the second context,
// the picker shows it and the run uses it; a preflight failure goes back to the
// settings with esc, every value kept; a changed field and the run goes on; the
// log file tells what happened; the answers file it saves replays the same
// plan headless; and Ctrl+C exits 130.
func TestWizardInTmuxContextEscapeReplayAndInterrupt(t *testing.T) {
	istioInstalled(t)
	ns := testcluster.UniqueName("wiztwo")
	cluster.RootCertWriterStandIn(t, "ROOT CERT OF THE MESH", ns)
	kubeconfig := twoContexts(t)
	pkg := filepath.Join(t.TempDir(), "istio-sidecar.deb")
	if err := os.WriteFile(pkg, []byte("never installed: the VM is never reached"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A VM at a closed loopback port: the preflight fails there.
	path, workDir := answers(t, ns, "vm:",
		"  host: 127.0.0.1",
		"  port: 1",
		"  user: root",
		"  identityFile: "+throwawayKey(t),
		"  sshConfig: "+filepath.Join(t.TempDir(), "no-ssh-config"),
		"  knownHostsFile: "+filepath.Join(t.TempDir(), "known_hosts"),
		"  package: "+pkg)
	logFile := filepath.Join(t.TempDir(), "wizard.log")
	s := startTmux(t, fmt.Sprintf("%s --kubeconfig %s --context two -f %s --log-file %s", binary, kubeconfig, path, logFile))

	screen := s.waitFor("Kube context", 20*time.Second)
	if !strings.Contains(screen, "> two") {
		t.Errorf("the picker does not show --context two:\n%s", screen)
	}
	s.waitFor(strings.TrimPrefix(cluster.Server, "https://"), 20*time.Second) // two's API server, probed

	screen = s.enterUntil("Before anything changed")
	if !strings.Contains(screen, "127.0.0.1") || !strings.Contains(screen, "esc settings") {
		t.Errorf("the preflight's failure:\n%s", screen)
	}
	s.keys("Escape")
	screen = s.waitFor("Kube context", 10*time.Second)
	if !strings.Contains(screen, "> two") {
		t.Errorf("back at the settings, the context is not kept:\n%s", screen)
	}
	// The VM's page keeps the host; clear it: the cluster half only.
	screen = s.enterUntil("VM host")
	if !strings.Contains(screen, "127.0.0.1") {
		t.Errorf("back at the settings, the VM host is not kept:\n%s", screen)
	}
	s.keys("C-u")
	screen = s.enterUntil("nothing changes until you press enter")
	if !strings.Contains(screen, "cluster two") {
		t.Errorf("the plan is not for context two:\n%s", screen)
	}
	titles := planTitles(screen)
	if len(titles) == 0 {
		t.Fatalf("no steps on the plan page:\n%s", screen)
	}
	s.keys("Enter")
	screen = s.waitFor("✓ Done", 2*time.Minute)
	if !strings.Contains(screen, "replay: vm2mesh apply -f") {
		t.Errorf("the summary gives no replay:\n%s", screen)
	}
	s.keys("q")
	s.waitFor("EXIT=0", 10*time.Second)

	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`preflight: context "two"`, "preflight failed", "step namespace: done", "settings saved as"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the log file lacks %q:\n%s", want, log)
		}
	}

	// The saved settings replay headless: the same steps, planned.
	saved := filepath.Join(workDir, "answers.yaml")
	data, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "kubeContext: two") || strings.Contains(string(data), "host:") {
		t.Errorf("the saved settings:\n%s", data)
	}
	r := run(t, nil, "apply", "-f", saved, "--dry-run", "--yes")
	if r.code != 0 {
		t.Fatalf("replay: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	plan, err := os.ReadFile(filepath.Join(workDir, "plan.sh"))
	if err != nil {
		t.Fatal(err)
	}
	var replayed []string
	for _, m := range regexp.MustCompile(`(?m)^# \d+\. (.*) \[\S+\]$`).FindAllStringSubmatch(string(plan), -1) {
		replayed = append(replayed, m[1])
	}
	if strings.Join(replayed, "\n") != strings.Join(titles, "\n") {
		t.Errorf("the replay plans other steps:\n%s\nthe wizard's plan:\n%s", strings.Join(replayed, "\n"), strings.Join(titles, "\n"))
	}

	// Ctrl+C: exit 130.
	c := startTmux(t, fmt.Sprintf("%s --kubeconfig %s --context two -f %s", binary, kubeconfig, saved))
	c.waitFor("Kube context", 20*time.Second)
	c.keys("C-c")
	c.waitFor("EXIT=130", 10*time.Second)
}

// vm2mesh doctor in a terminal shows the checks live and leaves them on the
// screen, with the tally doctor prints piped; its exit code is the same.
func TestDoctorInTmuxShowsTheChecksLive(t *testing.T) {
	istioInstalled(t)
	ns := testcluster.UniqueName("doctty")
	path, _ := answers(t, ns)
	s := startTmux(t, fmt.Sprintf("%s doctor -f %s", binary, path))
	s.waitFor("EXIT=", 60*time.Second)
	// The report and what scrolled off the top of the 24 rows.
	out, err := exec.Command("tmux", "-S", s.socket, "capture-pane", "-p", "-S", "-200", "-t", "wiz").Output()
	if err != nil {
		t.Fatal(err)
	}
	screen := string(out)
	for _, want := range []string{"Doctor · read-only checks", "cluster:", "✓ cluster-api", "vm-ssh: skipped: vm.host is not set", "doctor: "} {
		if !strings.Contains(screen, want) {
			t.Errorf("the live doctor lacks %q:\n%s", want, screen)
		}
	}
	piped := run(t, nil, "doctor", "-f", path)
	if !strings.Contains(screen, fmt.Sprintf("EXIT=%d", piped.code)) {
		t.Errorf("exit codes differ: piped %d, live:\n%s", piped.code, screen)
	}
	tally := piped.stdout[strings.LastIndex(piped.stdout, "doctor: "):]
	if !strings.Contains(screen, strings.TrimSpace(tally)) {
		t.Errorf("the live tally is not the piped one (%q):\n%s", tally, screen)
	}
}
