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

// goldenRun drives the real program over the model at 80x24 until the output
// shows text, then compares the final frame, as an ASCII terminal shows it, with
// testdata/<test>.golden (go test ./ui -update rewrites them).
func goldenRun(t *testing.T, m *Model, text string) {
	t.Helper()
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(80, 24))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(text)) },
		teatest.WithDuration(10*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Model)
	frame := ansi.Strip(final.View().Content)
	// Paths of the test's temporary directory differ on every run.
	frame = strings.ReplaceAll(frame, final.settings.WorkDir, "WORKDIR")
	golden.RequireEqual(t, frame)
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
	goldenRun(t, m, "connection refused")
}

func TestGoldenPlanPage(t *testing.T) {
	e := scripted(t,
		&scriptedStep{name: "control-plane", title: "Install the Istio control plane", done: true},
		&scriptedStep{name: "expose-istiod", title: "Expose istiod through the gateway"},
		&scriptedStep{name: "vm-place-files", title: "Place the files on the VM"})
	goldenRun(t, model(t, e, Options{}), "enter apply")
}

func TestGoldenRunPage(t *testing.T) {
	e := scripted(t,
		&scriptedStep{name: "namespace", title: "Create the namespace and service account"},
		progressStep{&scriptedStep{name: "vm-package", title: "Install the sidecar package"}},
		&scriptedStep{name: "vm-start", title: "Start the Istio agent"})
	m := model(t, e, Options{})
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(80, 24))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("enter apply")) },
		teatest.WithDuration(10*time.Second))
	tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("generated new workload certificate")) },
		teatest.WithDuration(10*time.Second))
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Model)
	golden.RequireEqual(t, ansi.Strip(final.View().Content))
}

func TestGoldenFailurePage(t *testing.T) {
	e := scripted(t,
		&scriptedStep{name: "namespace", title: "Create the namespace and service account"},
		&scriptedStep{name: "vm-verify", title: "Confirm the agent got its certificate", fails: 9, skippable: true,
			logs: []string{"istio.log: error failed to start: /var/run/secrets/tokens/istio-token is missing"}})
	m := model(t, e, Options{})
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(80, 24))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("enter apply")) },
		teatest.WithDuration(10*time.Second))
	tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("r retry")) },
		teatest.WithDuration(10*time.Second))
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Model)
	golden.RequireEqual(t, ansi.Strip(final.View().Content))
}

func TestGoldenSummaryPage(t *testing.T) {
	e := scripted(t,
		&scriptedStep{name: "control-plane", title: "Install the Istio control plane", done: true},
		&scriptedStep{name: "namespace", title: "Create the namespace and service account"},
		&scriptedStep{name: "vm-verify", title: "Confirm the agent got its certificate"})
	m := model(t, e, Options{})
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(80, 24))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("enter apply")) },
		teatest.WithDuration(10*time.Second))
	tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("Done")) },
		teatest.WithDuration(10*time.Second))
	tm.Send(tea.KeyPressMsg{Code: 'q', Text: "q"})
	final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Model)
	frame := strings.ReplaceAll(ansi.Strip(final.View().Content), e.workDir, "WORKDIR")
	golden.RequireEqual(t, frame)
}
