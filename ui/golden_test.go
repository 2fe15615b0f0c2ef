package ui

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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

// keyAfter is a key pressed once the output shows after.
type keyAfter struct {
	after string
	key   tea.KeyPressMsg
}

// sizes are the terminal sizes every page's golden is taken at: the usual
// 80x24, and 60x16, where the step list scrolls and the panes shrink.
var sizes = []struct{ w, h int }{{80, 24}, {60, 16}}

// goldenRun drives the real program over the model made by mk at each size
// (pressing enter on the plan first when apply is set, then the keys given,
// each once its page shows)
// until the output shows text, then compares the final frame, as an ASCII
// terminal shows it, with testdata/<test>/<size>.golden (go test ./ui -update
// rewrites them).
func goldenRun(t *testing.T, mk func(t *testing.T) *Model, apply bool, text string, keys ...keyAfter) {
	t.Helper()
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			m := mk(t)
			tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(sz.w, sz.h))
			// The renderer writes only what changed, so a text may reach the
			// output in pieces: now and then a full repaint is asked for.
			wait := func(s string) {
				t.Helper()
				var seen bytes.Buffer
				buf := make([]byte, 32<<10)
				deadline, repaint := time.Now().Add(10*time.Second), time.Now().Add(300*time.Millisecond)
				for !bytes.Contains(seen.Bytes(), []byte(s)) {
					if time.Now().After(deadline) {
						t.Fatalf("the output never showed %q; last:\n%s", s, ansi.Strip(seen.String()))
					}
					n, _ := tm.Output().Read(buf)
					seen.Write(buf[:n])
					if n == 0 {
						time.Sleep(20 * time.Millisecond)
					}
					if time.Now().After(repaint) {
						tm.Send(tea.ClearScreen())
						repaint = time.Now().Add(300 * time.Millisecond)
					}
				}
			}
			if apply {
				wait("enter apply")
				tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
			}
			for _, k := range keys {
				wait(k.after)
				tm.Send(k.key)
			}
			wait(text)
			if err := tm.Quit(); err != nil {
				t.Fatal(err)
			}
			final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Model)
			view := ansi.Strip(final.View().Content)
			// Paths of the test's temporary directory differ on every run.
			view = strings.ReplaceAll(view, final.settings.WorkDir, "WORKDIR")
			for _, l := range strings.Split(view, "\n") {
				if w := ansi.StringWidth(l); w > sz.w {
					t.Errorf("a line is %d wide, wider than the terminal's %d: %q", w, sz.w, l)
				}
			}
			if n := strings.Count(view, "\n") + 1; n > sz.h {
				t.Errorf("the page is %d lines, higher than the terminal's %d", n, sz.h)
			}
			golden.RequireEqual(t, view)
		})
	}
}

// scripted is the event source of the golden pages: stand-in steps only.
func scripted(t *testing.T, list ...steps.Step) *scriptedEngine {
	return &scriptedEngine{steps: list, workDir: fixedLengthDir(t)}
}

// fixedLengthDir is a new temporary directory whose path has the same length
// on every run and no hyphen (a place to wrap), so that the lines it is in
// break at the same places.
func fixedLengthDir(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(os.TempDir(), "vm2meshgolden"+hex.EncodeToString(b))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
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
	goldenRun(t, func(t *testing.T) *Model { return settingsModel(t) }, false, "refused")
}

// settingsModel is the wizard at its settings pages, over a kubeconfig whose
// context's API server is a closed loopback port: the cluster line says so,
// the same way on every run.
func settingsModel(t *testing.T) *Model {
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
	return model(t, scripted(t), Options{AskSettings: true, Sources: SettingsSources{
		Kubeconfig: kubeconfig, SSHConfig: filepath.Join(t.TempDir(), "no-ssh-config")}})
}

// onboarding is the stand-in steps of a run with a VM, titled as the real ones,
// with a long plan line: enough to make the step list scroll at 60x16.
func onboarding(fail, block bool) []steps.Step {
	list := []steps.Step{
		&scriptedStep{name: "workdir", title: "Check the work directory", done: true},
		&scriptedStep{name: "control-plane", title: "Install the Istio control plane", done: true},
		&scriptedStep{name: "eastwest", title: "Install the east-west gateway", done: true},
		&scriptedStep{name: "expose-istiod", title: "Expose istiod through the gateway"},
		&scriptedStep{name: "namespace", title: "Create the namespace and service account",
			logs: []string{"namespace vm created; installIstio: always would run istioctl install over the running istiod 1.31.1 in istio-system, which this run leaves alone"}},
		&scriptedStep{name: "workloadgroup", title: "Apply the WorkloadGroup"},
		&scriptedStep{name: "vm-files", title: "Generate the VM's files"},
		&scriptedStep{name: "vm-preflight", title: "Check the VM"},
		&scriptedStep{name: "vm-upload", title: "Upload the files and the package"},
	}
	switch {
	case block:
		list = append(list, progressStep{&scriptedStep{name: "vm-package", title: "Install the sidecar package"}})
	case fail:
		list = append(list, &scriptedStep{name: "vm-package", title: "Install the sidecar package", fails: 9, skippable: true,
			logs: []string{"dpkg: error processing archive istio-sidecar.deb (--install): cannot access archive: No such file or directory"}})
	default:
		list = append(list, &scriptedStep{name: "vm-package", title: "Install the sidecar package"})
	}
	return append(list,
		&scriptedStep{name: "vm-place", title: "Place the files on the VM"},
		&scriptedStep{name: "vm-start", title: "Start the Istio agent"},
		&scriptedStep{name: "vm-verify", title: "Confirm the agent got its certificate"})
}

func onboardingModel(fail, block bool) func(t *testing.T) *Model {
	return func(t *testing.T) *Model { return model(t, scripted(t, onboarding(fail, block)...), Options{}) }
}

func TestGoldenPlanPage(t *testing.T) {
	goldenRun(t, onboardingModel(false, false), false, "enter apply")
}

func TestGoldenRunPage(t *testing.T) {
	goldenRun(t, onboardingModel(false, true), true, "generated new workload certificate")
}

func TestGoldenFailurePage(t *testing.T) {
	goldenRun(t, onboardingModel(true, false), true, "r retry")
}

func TestGoldenPreflightFailurePage(t *testing.T) {
	goldenRun(t, func(t *testing.T) *Model {
		e := scripted(t)
		e.err = steps.WithHint(errors.New(`eastwestInstall: is none, but there is no service istio-system/istio-eastwestgateway and gatewayAddress is empty`),
			"install the gateway (eastwestInstall: auto does), or set gatewayAddress to where VMs reach istiod")
		m := model(t, e, Options{})
		m.opts.AskSettings = true // as after the settings pages: esc goes back to them
		return m
	}, false, "esc settings")
}

func TestGoldenHostKeyDialog(t *testing.T) {
	goldenRun(t, func(t *testing.T) *Model {
		e := scripted(t, onboarding(false, false)...)
		e.askHost = true
		return model(t, e, Options{})
	}, false, "trust once")
}

func TestGoldenSummaryPage(t *testing.T) {
	goldenRun(t, onboardingModel(false, false), true, "Done")
}

// doctorChecks are stand-in results, one of each kind, in the engine's order.
func doctorChecks() []steps.CheckResult {
	var out []steps.CheckResult
	for _, name := range steps.DoctorCheckNames() {
		sec := steps.SectionCluster
		if strings.HasPrefix(name, "vm-") {
			sec = steps.SectionVM
		}
		r := steps.CheckResult{Name: name, Section: sec, Status: steps.CheckOK, Found: "as expected"}
		switch name {
		case "workloadentry":
			r.Status, r.Found, r.Hint = steps.CheckWarn, "no WorkloadEntry for 203.0.113.10 yet", "the agent registers the VM once it is connected; see vm-agent-log"
		case "vm-agent":
			r.Status, r.Found, r.Hint = steps.CheckFail, "istio.service is inactive (dead) since 07:04:57", "start it: systemctl start istio (vm2mesh apply does), then look at /var/log/istio/istio.log"
		case "vm-dns-capture":
			r.Status, r.Found = steps.CheckSkip, "needs vm-iptables, which was skipped"
		}
		out = append(out, r)
	}
	return out
}

// The doctor page opened from the summary, with every check reported.
func TestGoldenDoctorPage(t *testing.T) {
	goldenRun(t, func(t *testing.T) *Model {
		e := scripted(t, onboarding(false, false)...)
		e.checks = doctorChecks()
		return model(t, e, Options{})
	}, true, "r check again", keyAfter{after: "d doctor", key: tea.KeyPressMsg{Code: 'd', Text: "d"}})
}

// The doctor page live: checks done, one running, the rest to come.
func TestGoldenDoctorPageRunning(t *testing.T) {
	goldenRun(t, func(t *testing.T) *Model {
		e := scripted(t)
		e.checks, e.blockDoctor = doctorChecks()[:9], true
		return model(t, e, Options{Doctor: true})
	}, false, "vm-package: as expected")
}
