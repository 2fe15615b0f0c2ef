package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vm2mesh/vm2mesh/steps"
)

type applyOptions struct {
	answers     string
	dryRun      bool
	yes         bool
	kubeconfig  string
	kubeContext string
	only        string
}

func newApply(stdio IO) *cobra.Command {
	var o applyOptions
	cmd := &cobra.Command{
		Use:   "apply -f answers.yaml",
		Short: "Run the steps headless from an answers file",
		Long: `apply runs the onboarding steps without the wizard, from an answers file (see
README.md). Steps that are already done are skipped and say so; a failed run
resumes at the failed step when run again. --dry-run writes every manifest and an
ordered plan.sh into workDir and changes nothing.`,
		Args: noArgs("give the answers file with -f answers.yaml"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.answers == "" {
				return errors.New("expecting an answers file: -f answers.yaml")
			}
			return runApply(cmd.Context(), stdio, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.answers, "file", "f", "", "answers file (YAML; - reads stdin)")
	f.BoolVar(&o.dryRun, "dry-run", false, "write the manifests and plan.sh into workDir; change nothing")
	f.BoolVarP(&o.yes, "yes", "y", false, "apply without asking")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (overrides the answers file)")
	f.StringVar(&o.kubeContext, "context", "", "kubeconfig context (overrides kubeContext in the answers file)")
	f.StringVar(&o.only, "only", "", "run one half: cluster, or vm (which reads the five files from workDir)")
	return cmd
}

func runApply(ctx context.Context, stdio IO, o applyOptions) error {
	// Everything that can be checked here is, before the cluster or the VM is
	// contacted: a run that would refuse later must not have logged in to the VM
	// or remembered its host key first.
	if err := steps.CheckOnly(o.only); err != nil {
		return err
	}
	settings, k8sOpts, err := steps.Resolve(ctx, o.answers, stdio.In, steps.Flags{Kubeconfig: o.kubeconfig, Context: o.kubeContext})
	if err != nil {
		return err
	}
	prompts := runPrompts(stdio, o.answers)
	if err := consent(stdio, "apply", "changes the cluster", o.answers, o.yes, o.dryRun); err != nil {
		return err
	}
	local, err := steps.CheckLocal(settings, k8sOpts, o.only)
	if err != nil {
		return err
	}
	if warning, err := local.WorkDir.Tighten(); err != nil {
		return err
	} else if warning != "" {
		fmt.Fprintf(stdio.Err, "vm2mesh: warning: %s\n", warning)
	}
	env, list, err := steps.PrepareRun(ctx, settings, k8sOpts, o.only, prompts)
	if err != nil {
		return withHint(err)
	}
	defer env.Close()
	p := &printer{w: stdio.Out}
	if env.Client != nil {
		fmt.Fprintf(stdio.Out, "cluster: context %q at %s (Kubernetes %s)\n", env.Client.Context, env.Client.Server, env.ServerVersion)
		fmt.Fprintf(stdio.Out, "mesh: %s\n", env.MeshLine())
	}
	printVM(stdio, env)
	runner := &steps.Runner{Steps: list, Env: env, Emit: p.event}

	if o.dryRun {
		return dryRun(ctx, stdio, runner)
	}
	if st := steps.LoadState(env.WorkDir, settings); st != nil {
		if failed, ok := st.Failed(); ok {
			fmt.Fprintf(stdio.Out, "resuming: the last run failed at %s\n", failed)
		}
	}
	if err := confirmPlan(ctx, stdio, runner, o.yes, "Apply these changes?"); err != nil {
		return err
	}
	res, err := runSteps(ctx, runner)
	if err != nil {
		return err
	}
	if res.Ran == 0 {
		fmt.Fprintf(stdio.Out, "nothing changed: all %d steps were done already or skipped\n", res.Skipped+res.Checked)
	} else {
		checked := ""
		if res.Checked > 0 {
			checked = fmt.Sprintf(", %d checked", res.Checked)
		}
		fmt.Fprintf(stdio.Out, "done: %d steps ran%s, %d skipped; the VM's files are in %s\n", res.Ran, checked, res.Skipped, env.WorkDir)
	}
	return nil
}

// showPlan prints each step with what it would do, before asking.
func showPlan(ctx context.Context, w io.Writer, r *steps.Runner) error {
	fmt.Fprintln(w, "plan:")
	for _, st := range r.Steps {
		status, err := st.Check(ctx, r.Env)
		if err != nil {
			fmt.Fprintf(w, "  → %s (checked when it runs: %s)\n", st.Title(), err)
			continue
		}
		if status.Skip {
			fmt.Fprintf(w, "  • %s: skip (%s)\n", st.Title(), status.Reason)
			continue
		}
		fmt.Fprintf(w, "  → %s\n", st.Title())
		acts, err := st.Plan(r.Env)
		if err != nil {
			return err
		}
		for _, a := range acts {
			switch a.Kind {
			case steps.Command:
				fmt.Fprintf(w, "      $ %s\n", steps.ShellJoin(a.Argv))
			case steps.Manifest:
				fmt.Fprintf(w, "      manifest %s (%s)\n", a.File, a.Title)
			case steps.Note:
				for _, l := range strings.Split(a.Body, "\n") {
					fmt.Fprintf(w, "      %s\n", l)
				}
			}
		}
	}
	fmt.Fprintln(w, "(vm2mesh apply --dry-run writes every manifest in full)")
	return nil
}

// printer writes events as one status line per step, kind-style, with the
// step's log lines indented under it.
type printer struct {
	w         io.Writer
	lastTenth int64 // progress printed in tenths, so an upload is not a flood
}

func (p *printer) event(e steps.Event) {
	switch e.Kind {
	case steps.Skipped:
		fmt.Fprintf(p.w, " • %s — skipped: %s\n", e.Title, e.Text)
	case steps.Started:
		fmt.Fprintf(p.w, " → %s\n", e.Title)
	case steps.Log:
		fmt.Fprintf(p.w, "     %s\n", e.Text)
	case steps.Warning:
		fmt.Fprintf(p.w, "   ! %s\n", e.Text)
	case steps.Progress:
		if e.Total <= 0 {
			return
		}
		tenth := e.Cur * 10 / e.Total
		if tenth == p.lastTenth {
			return
		}
		p.lastTenth = tenth
		fmt.Fprintf(p.w, "     %s: %d%% of %d KiB\n", e.Text, e.Cur*100/e.Total, e.Total/1024)
	case steps.Done:
		if e.Text != "" {
			fmt.Fprintf(p.w, " ✓ %s: %s\n", e.Title, e.Text)
		} else {
			fmt.Fprintf(p.w, " ✓ %s\n", e.Title)
		}
	case steps.Failed:
		fmt.Fprintf(p.w, " ✗ %s: %s\n", e.Title, e.Text)
		if e.Hint != "" {
			fmt.Fprintf(p.w, "   hint: %s\n", e.Hint)
		}
		fmt.Fprintln(p.w, "   run the same command again to resume from this step")
	}
}
