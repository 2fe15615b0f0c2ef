// Package app is vm2mesh's command line: flags and subcommands, then the steps.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Exit codes, as gum and most CLIs use them.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitInterrupted = 130
)

// IO is where a run reads and writes.
type IO struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// Run executes one command line and returns the process exit code.
func Run(ctx context.Context, args []string, stdio IO) int {
	root := newRoot(stdio)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return ExitOK
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		fmt.Fprintln(stdio.Err, "vm2mesh: interrupted; progress is saved, run the same command again to resume")
		return ExitInterrupted
	default:
		var shown *shownError
		if !errors.As(err, &shown) {
			fmt.Fprintf(stdio.Err, "vm2mesh: %s\n", strings.TrimSpace(err.Error()))
		}
		return ExitFailure
	}
}

// shownError is a failure already reported to the user in full.
type shownError struct{ error }

func newRoot(stdio IO) *cobra.Command {
	var wiz wizardOptions
	root := &cobra.Command{
		Use:   "vm2mesh",
		Short: "Take a virtual machine into an Istio mesh",
		Long: `vm2mesh takes an operator from "a Kubernetes cluster and a VM" to "the VM is a
working member of the Istio mesh": the control plane, the east-west gateway,
istiod exposed, the namespace and service account, the WorkloadGroup and the VM's
files. Every step shows what it will do first, skips what is already done, and
resumes where a failed run stopped.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWizard(cmd.Context(), stdio, wiz)
		},
	}
	f := root.Flags()
	f.StringVarP(&wiz.answers, "file", "f", "", "answers file that fills in the settings (see README.md)")
	f.StringVar(&wiz.kubeconfig, "kubeconfig", "", "kubeconfig file")
	f.StringVar(&wiz.kubeContext, "context", "", "kubeconfig context")
	f.StringVar(&wiz.only, "only", "", "run one half: cluster or vm")
	f.StringVar(&wiz.logFile, "log-file", "", "write the wizard's debug log here")
	addFleetFlags(root, &wiz.limit, &wiz.parallel, &wiz.answers)
	root.SetFlagErrorFunc(flagError)
	root.Args = noArgs("the commands are apply, generate and version; the wizard takes only flags (vm2mesh --help)")
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	root.AddCommand(newGenerate(stdio), newApply(stdio), newVersion(stdio))
	root.AddCommand(newDoctor(stdio))
	root.AddCommand(newRemove(stdio))
	registerCompletions(root)
	return root
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// flagError adds the fix to a flag that does not parse. A password flag is
// refused by name: a password on the command line shows in ps and the history.
func flagError(cmd *cobra.Command, err error) error {
	if strings.Contains(strings.ToLower(err.Error()), "password") {
		return fmt.Errorf("%w: vm2mesh takes no password on the command line (ps and the shell history would show it); name a file holding it in the answers file (vm.passwordFile, vm.sudoPasswordFile), or run in a terminal to be asked", err)
	}
	return fmt.Errorf("%w; see %s --help for the flags", err, cmd.CommandPath())
}

// noArgs refuses arguments with what to give instead.
func noArgs(fix string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("%s takes no arguments, not %q; %s", cmd.CommandPath(), args[0], fix)
		}
		return nil
	}
}
