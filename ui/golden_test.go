package ui

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/vm2mesh/vm2mesh/steps"
)

// goldenRun drives the real program over the model at 80x24 (pressing enter on
// the plan first when apply is set) until the output shows text, then compares
// the final frame, as an ASCII terminal shows it, with testdata/<test>.golden
// (go test ./ui -update rewrites them).
func goldenRun(t *testing.T, m *Model, apply bool, text string) {
	t.Helper()
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(80, 24))
	wait := func(s string) {
		teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(s)) },
			teatest.WithDuration(10*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
	}
	if apply {
		wait("enter apply")
		tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
	}
	wait(text)
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Model)
	// Paths of the test's temporary directory differ on every run.
	golden.RequireEqual(t, strings.ReplaceAll(ansi.Strip(final.View().Content), final.settings.WorkDir, "WORKDIR"))
}

// scripted is the event source of the golden pages: stand-in steps only.
func scripted(t *testing.T, list ...steps.Step) *scriptedEngine {
	return &scriptedEngine{steps: list, workDir: t.TempDir()}
}

func model(t *testing.T, e *scriptedEngine, o Options) *Model {
	o.Static = true
	s := steps.Defaults()
	s.WorkDir = e.workDir
	return New(context.Background(), e, s, o)
}

// progressStep reports an upload halfway and then waits, like a step mid-upload.
type progressStep struct{ *scriptedStep }

func (p progressStep) Run(ctx context.Context, env *steps.Env, out *steps.Output) error {
	out.Logf("uploading istio-sidecar.deb")
	out.Progress("upload istio-sidecar.deb", 32<<20, 64<<20)
	out.Logf("istio.log: info cache generated new workload certificate")
	<-ctx.Done()
	return ctx.Err()
}

func TestGoldenSettingsPage(t *testing.T) {
	// A context whose API server is a closed loopback port: the cluster line says
	// so, the same way on every run.
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: lab, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: lab, user: {token: t}}]
contexts: [{name: lab, context: {cluster: lab, user: lab}}]
current-context: lab
`), 0o600); err != nil {
		t.Fatal(err)
	}
	m := model(t, scripted(t), Options{AskSettings: true, Sources: SettingsSources{
		Kubeconfig: kubeconfig, SSHConfig: filepath.Join(t.TempDir(), "no-ssh-config")}})
	goldenRun(t, m, false, "connection refused")
}

func TestGoldenPlanPage(t *testing.T) {
	e := scripted(t,
		&scriptedStep{name: "control-plane", title: "Install the Istio control plane", done: true},
		&scriptedStep{name: "expose-istiod", title: "Expose istiod through the gateway"},
		&scriptedStep{name: "vm-place-files", title: "Place the files on the VM"})
	goldenRun(t, model(t, e, Options{}), false, "enter apply")
}

func TestGoldenRunPage(t *testing.T) {
	e := scripted(t,
		&scriptedStep{name: "namespace", title: "Create the namespace and service account"},
		progressStep{&scriptedStep{name: "vm-package", title: "Install the sidecar package"}},
		&scriptedStep{name: "vm-start", title: "Start the Istio agent"})
	goldenRun(t, model(t, e, Options{}), true, "generated new workload certificate")
}

func TestGoldenFailurePage(t *testing.T) {
	e := scripted(t,
		&scriptedStep{name: "namespace", title: "Create the namespace and service account"},
		&scriptedStep{name: "vm-verify", title: "Confirm the agent got its certificate", fails: 9, skippable: true,
			logs: []string{"istio.log: error failed to start: /var/run/secrets/tokens/istio-token is missing"}})
	goldenRun(t, model(t, e, Options{}), true, "r retry")
}

func TestGoldenSummaryPage(t *testing.T) {
	e := scripted(t,
		&scriptedStep{name: "control-plane", title: "Install the Istio control plane", done: true},
		&scriptedStep{name: "namespace", title: "Create the namespace and service account"},
		&scriptedStep{name: "vm-verify", title: "Confirm the agent got its certificate"})
	goldenRun(t, model(t, e, Options{}), true, "Done")
}
