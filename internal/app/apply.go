package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/steps"
)

type applyOptions struct {
	answers     string
	dryRun      bool
	yes         bool
	kubeconfig  string
	kubeContext string
	only        string
	limit       string
	parallel    int
}

func newApply(stdio IO) *cobra.Command {
	var o applyOptions
	cmd := &cobra.Command{
		Use:   "apply -f answers.yaml",
		Short: "Run the steps headless from an answers file",
		Long: `apply runs the onboarding steps without the wizard, from an answers file (see
README.md). Steps that are already done are skipped and say so; a failed run
resumes at the failed step when run again. --dry-run writes every manifest and an
ordered plan.sh into workDir and changes nothing.

An answers file with vms: is a fleet: the cluster half runs once per
WorkloadGroup, then the VMs run --parallel at a time, each in workDir/vms/NAME;
one that fails stops only itself, and the next run resumes it and skips the VMs
that are done. --limit runs only the VMs it names.`,
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
	addFleetFlags(cmd, &o.limit, &o.parallel, &o.answers)
	return cmd
}

// addFleetFlags adds --limit (completing the VM names of the -f file) and,
// when parallel is not nil, --parallel.
func addFleetFlags(cmd *cobra.Command, limit *string, parallel *int, answers *string) {
	f := cmd.Flags()
	f.StringVar(limit, "limit", "", "run only these VMs of a fleet (vms:): NAME[,NAME...]")
	if parallel != nil {
		f.IntVar(parallel, "parallel", steps.DefaultParallel, "how many VMs of a fleet run at once")
	}
	_ = cmd.RegisterFlagCompletionFunc("limit", func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return completeVMNames(cmd.Context(), *answers, toComplete), cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	})
}

// completeVMNames are the names of the answers file's VMs for --limit: after
// the last comma, those not given yet.
func completeVMNames(ctx context.Context, answers, toComplete string) []cobra.Completion {
	if answers == "" || answers == "-" {
		return nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	f, err := steps.LoadFleet(ctx, answers, nil)
	if err != nil || f.Single {
		return nil
	}
	done, _ := splitLast(toComplete)
	given := map[string]bool{}
	for _, n := range strings.Split(done, ",") {
		given[n] = true
	}
	var out []cobra.Completion
	for _, n := range f.Names() {
		if !given[n] {
			out = append(out, done+sep(done)+n)
		}
	}
	return out
}

func splitLast(s string) (done, last string) {
	i := strings.LastIndex(s, ",")
	if i < 0 {
		return "", s
	}
	return s[:i], s[i+1:]
}

func sep(done string) string {
	if done == "" {
		return ""
	}
	return ","
}

// loadFleet decides the settings (steps.ResolveFleet) and keeps the VMs
// --limit names.
func loadFleet(ctx context.Context, stdio IO, answers, limit string, flags steps.Flags) (steps.Fleet, k8s.Options, error) {
	fleet, o, err := steps.ResolveFleet(ctx, answers, stdio.In, flags)
	if err != nil {
		return fleet, o, err
	}
	if limit != "" && fleet.Single {
		return fleet, o, fmt.Errorf("--limit picks VMs of a fleet (vms: in the answers file); %s has one VM under vm:, so leave --limit out", answers)
	}
	fleet, err = fleet.Limit(limit)
	return fleet, o, err
}

func runApply(ctx context.Context, stdio IO, o applyOptions) error {
	// Everything that can be checked here is, before the cluster or the VM is
	// contacted: a run that would refuse later must not have logged in to the VM
	// or remembered its host key first.
	if err := steps.CheckOnly(o.only); err != nil {
		return err
	}
	if o.parallel < 1 {
		return fmt.Errorf("--parallel %d: give how many VMs run at once, 1 or more (default %d)", o.parallel, steps.DefaultParallel)
	}
	fleet, k8sOpts, err := loadFleet(ctx, stdio, o.answers, o.limit, steps.Flags{Kubeconfig: o.kubeconfig, Context: o.kubeContext})
	if err != nil {
		return err
	}
	prompts := runPrompts(stdio, o.answers)
	if err := consent(stdio, "apply", "changes the cluster", o.answers, o.yes, o.dryRun); err != nil {
		return err
	}
	out := newFleetPrinter(stdio.Out, fleet)
	out.only = o.only
	run := &steps.FleetRun{Fleet: fleet, Only: o.only, Parallel: o.parallel, K8s: k8sOpts, Prompts: prompts, Emit: out.event}
	warnings, err := run.Check()
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(stdio.Err, "vm2mesh: warning: %s\n", w)
	}
	if err := run.Prepare(ctx); err != nil {
		return withHint(err)
	}
	defer run.Close()
	if fleet.Single {
		// The fleet of one says what it always said: a failed login is the run's error.
		if st := run.Status()[0]; st.State == steps.VMFailed || st.State == steps.VMInterrupted {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return withHint(st.Err)
		}
	}
	if c := run.Cluster(); c.Client != nil {
		fmt.Fprintf(stdio.Out, "cluster: context %q at %s (Kubernetes %s)\n", c.Client.Context, c.Client.Server, c.ServerVersion)
		fmt.Fprintf(stdio.Out, "mesh: %s\n", c.MeshLine())
	}
	if fleet.Single {
		printVM(stdio, run.Env())
	} else {
		out.vms(run.Status())
	}
	if o.dryRun {
		return dryRunAll(ctx, stdio, run.Runners())
	}
	out.resuming(run.Runners())
	if err := confirmFleetPlan(ctx, stdio, run, o.yes, "Apply these changes?"); err != nil {
		return err
	}
	statuses := run.Run(ctx)
	if fleet.Single {
		st := statuses[0]
		if st.Err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &shownError{st.Err}
		}
		res := st.Result
		if res.Ran == 0 {
			fmt.Fprintf(stdio.Out, "nothing changed: all %d steps were done already or skipped\n", res.Skipped+res.Checked)
		} else {
			checked := ""
			if res.Checked > 0 {
				checked = fmt.Sprintf(", %d checked", res.Checked)
			}
			fmt.Fprintf(stdio.Out, "done: %d steps ran%s, %d skipped; the VM's files are in %s\n", res.Ran, checked, res.Skipped, st.WorkDir)
		}
		return nil
	}
	return out.summary(ctx, run.GroupResults(), statuses)
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
