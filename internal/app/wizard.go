package app

import (
	"context"
	"errors"
	"os"

	tea "charm.land/bubbletea/v2"
	"golang.org/x/term"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/steps"
	"github.com/vm2mesh/vm2mesh/ui"
)

type wizardOptions struct {
	answers, kubeconfig, kubeContext, only, logFile string
}

// runWizard starts the TUI when there is a terminal for it, and otherwise says
// what to use instead (Bubble Tea would fail opening /dev/tty).
func runWizard(ctx context.Context, stdio IO, o wizardOptions) error {
	in, inOK := stdio.In.(*os.File)
	out, outOK := stdio.Out.(*os.File)
	if !inOK || !outOK || !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(out.Fd())) || os.Getenv("TERM") == "dumb" {
		return errors.New("the wizard needs an interactive terminal (this is not one, or TERM=dumb): run `vm2mesh apply -f answers.yaml` instead (see README.md)")
	}
	s := steps.Defaults()
	if o.answers != "" {
		var err error
		if s, err = steps.LoadAnswers(o.answers); err != nil {
			return err
		}
	}
	if err := steps.CheckOnly(o.only); err != nil {
		return err
	}
	var opts []tea.ProgramOption
	if o.logFile != "" {
		f, err := tea.LogToFile(o.logFile, "vm2mesh")
		if err != nil {
			return err
		}
		defer f.Close()
	}
	if s.Kubeconfig == "" {
		s.Kubeconfig = o.kubeconfig
	}
	m := ui.New(ctx, ui.RealEngine{K8s: k8s.Options{Kubeconfig: o.kubeconfig, Context: o.kubeContext}, Only: o.only}, s,
		ui.Options{AskSettings: true, Sources: ui.SettingsSources{Kubeconfig: s.Kubeconfig, SSHConfig: s.VM.SSHConfig}})
	opts = append(opts, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out))
	if _, err := tea.NewProgram(m, opts...).Run(); err != nil && !errors.Is(err, tea.ErrProgramKilled) {
		return err
	}
	if m.Outcome != nil {
		return m.Outcome
	}
	return nil
}
