package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/steps"
)

type removeOptions struct {
	applyOptions
	all bool
}

// removeFleet removes each VM of a fleet (the ones --limit names) in turn, each
// with its own WorkloadEntry; one that fails does not stop the others. Then the
// cluster half of each WorkloadGroup none of whose VMs is left, and, with
// --all and every VM of the file gone, istiod's exposure once.
func removeFleet(ctx context.Context, stdio IO, o removeOptions, k8sOpts k8s.Options, fleet steps.Fleet) error {
	var failed []string
	var left []string
	// part removes one VM or one group's half, named so in the output; false
	// when it failed (said, unless removeOne showed it).
	part := func(name string, s steps.Settings, keep func(steps.Step) bool) bool {
		l, err := removeOne(ctx, stdio, o, k8sOpts, s, keep)
		if l != nil {
			left = l
		}
		if err == nil {
			return true
		}
		var shown *shownError
		if ctx.Err() == nil && !errors.As(err, &shown) {
			fmt.Fprintf(stdio.Out, "%s: %s\n", name, withHint(err))
		}
		return false
	}
	for _, vm := range fleet.VMs {
		fmt.Fprintf(stdio.Out, "== %s (%s)\n", vm.Name, vm.Settings.WorkDir)
		if !part(vm.Name, vm.Settings, vmAndItsEntry) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed = append(failed, vm.Name)
		}
	}
	// A WorkloadGroup whose every VM is gone: its cluster half, as recorded in
	// its directory (the WorkloadGroup, the namespace and service account
	// vm2mesh created for it, when nothing else uses them).
	var groupsFailed []string
	everyGroupGone := !fleet.LeftOut() // a VM --limit left out still uses what all share
	if o.only != steps.HalfVM {
		// In the reverse order of apply's: a namespace or service account
		// groups share is recorded as created by the first group, which then
		// comes last, when the others' objects are gone from it.
		groups := fleet.Groups()
		slices.Reverse(groups)
		for i, g := range groups {
			if !fleet.Whole(g) || slices.ContainsFunc(fleet.VMs, func(vm steps.FleetVM) bool {
				return steps.GroupOf(vm.Settings) == g && slices.Contains(failed, vm.Name)
			}) {
				everyGroupGone = false
				continue
			}
			keep := groupHalf
			if o.all && everyGroupGone && i == len(groups)-1 {
				keep = groupHalfAndExposure // the last group, every other one gone: no VM of the file is left
			}
			gs := fleet.GroupSettings(g)
			fmt.Fprintf(stdio.Out, "== WorkloadGroup %s, its VMs removed (%s)\n", g, gs.WorkDir)
			if !part("WorkloadGroup "+g.String(), gs, keep) {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				groupsFailed = append(groupsFailed, g.String())
				everyGroupGone = false
			}
		}
	}
	if o.all && !everyGroupGone && o.only != steps.HalfVM {
		fmt.Fprintln(stdio.Out, "--all: istiod's exposure is kept, as VMs of the answers file are left")
	}
	printLeft(stdio, left)
	if len(failed) > 0 || len(groupsFailed) > 0 {
		if len(failed) > 0 {
			fmt.Fprintf(stdio.Out, "%d of %d VMs failed: %s; run the same command again to resume them (--limit %s)\n", len(failed), len(fleet.VMs), strings.Join(failed, ", "), strings.Join(failed, ","))
		}
		if len(groupsFailed) > 0 {
			fmt.Fprintf(stdio.Out, "the cluster half of WorkloadGroup %s failed; run the same command again to resume\n", strings.Join(groupsFailed, ", "))
		}
		return &shownError{fmt.Errorf("%d VMs and %d WorkloadGroups failed", len(failed), len(groupsFailed))}
	}
	fmt.Fprintf(stdio.Out, "done: %d VMs removed\n", len(fleet.VMs))
	return nil
}

// Which remove steps a run of a fleet's removal takes: a VM's own (the VM half
// and its WorkloadEntry), a WorkloadGroup's, and the exposure's once at the end.
func vmAndItsEntry(s steps.Step) bool {
	switch s.(type) {
	case steps.RemoveWorkloadGroup, steps.RemoveNamespace, steps.RemoveExposure, steps.RemoveEastWest:
		return false
	}
	return true
}

func groupHalf(s steps.Step) bool {
	switch s.(type) {
	case steps.RemoveWorkloadGroup, steps.RemoveNamespace:
		return true
	}
	return false
}

func groupHalfAndExposure(s steps.Step) bool {
	switch s.(type) {
	case steps.RemoveExposure, steps.RemoveEastWest:
		return true
	}
	return groupHalf(s)
}

func everyStep(steps.Step) bool { return true }

func printLeft(stdio IO, left []string) {
	if len(left) == 0 {
		return
	}
	fmt.Fprintln(stdio.Out, "left in the cluster, on purpose:")
	for _, l := range left {
		fmt.Fprintf(stdio.Out, "  %s\n", l)
	}
}

func newRemove(stdio IO) *cobra.Command {
	var o removeOptions
	cmd := &cobra.Command{
		Use:   "remove -f answers.yaml",
		Short: "Take the VM out of the mesh: undo what apply did",
		Long: `remove undoes apply with the same answers file: on the VM it stops the agent,
cleans its iptables rules, removes the files vm2mesh placed, the sidecar package
(when vm2mesh installed it), its /etc/hosts line and /var/lib/vm2mesh; in the
cluster the VM's WorkloadEntry, the WorkloadGroup once no other VM uses it, and
the namespace and service account if vm2mesh created them and they hold nothing
else. --all also deletes istiod's exposure. The control plane and the east-west
gateway are never deleted (the summary says how). It shows the plan first, skips
what is already gone and resumes where a failed run stopped.`,
		Args: noArgs("give the answers file with -f answers.yaml"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.answers == "" {
				return errors.New("expecting the answers file apply used: -f answers.yaml")
			}
			return runRemove(cmd.Context(), stdio, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.answers, "file", "f", "", "the answers file apply used (YAML; - reads stdin)")
	f.BoolVar(&o.dryRun, "dry-run", false, "write remove-plan.sh into workDir; change nothing")
	f.BoolVarP(&o.yes, "yes", "y", false, "remove without asking")
	f.BoolVar(&o.all, "all", false, "also delete istiod's exposure (istiod-gateway, istiod-vs, cross-network-gateway), which other VMs may use")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (overrides the answers file)")
	f.StringVar(&o.kubeContext, "context", "", "kubeconfig context (overrides kubeContext in the answers file)")
	f.StringVar(&o.only, "only", "", "run one half: cluster or vm")
	addFleetFlags(cmd, &o.limit, nil, &o.answers)
	return cmd
}

func runRemove(ctx context.Context, stdio IO, o removeOptions) error {
	// As apply: everything local is checked before the cluster or the VM is contacted.
	if err := steps.CheckOnly(o.only); err != nil {
		return err
	}
	fleet, k8sOpts, err := loadFleet(ctx, stdio, o.answers, o.limit, steps.Flags{Kubeconfig: o.kubeconfig, Context: o.kubeContext})
	if err != nil {
		return err
	}
	if err := consent(stdio, "remove", "deletes from the cluster and the VM", o.answers, o.yes, o.dryRun); err != nil {
		return err
	}
	if !fleet.Single {
		return removeFleet(ctx, stdio, o, k8sOpts, fleet)
	}
	left, err := removeOne(ctx, stdio, o, k8sOpts, fleet.Settings, everyStep)
	if err == nil {
		printLeft(stdio, left)
	}
	return err
}

// removeOne removes one VM (or, without vm.host, the cluster half alone),
// running the steps keep takes; it returns what it leaves in the cluster on
// purpose, for the caller to print once.
func removeOne(ctx context.Context, stdio IO, o removeOptions, k8sOpts k8s.Options, settings steps.Settings, keep func(steps.Step) bool) ([]string, error) {
	prompts := runPrompts(stdio, o.answers)
	env, all, err := steps.PrepareRemove(ctx, settings, k8sOpts, o.only, o.all, prompts)
	if err != nil {
		return nil, withHint(err)
	}
	var list []steps.Step
	for _, s := range all {
		if keep(s) {
			list = append(list, s)
		}
	}
	defer env.Close()
	if env.Client != nil {
		fmt.Fprintf(stdio.Out, "cluster: context %q at %s (Kubernetes %s)\n", env.Client.Context, env.Client.Server, env.ServerVersion)
	}
	printVM(stdio, env)
	p := &printer{w: stdio.Out}
	runner := &steps.Runner{Steps: list, Env: env, Emit: p.event, Command: "remove", PlanFile: "remove-plan.sh"}
	if o.dryRun {
		return nil, dryRun(ctx, stdio, runner)
	}
	if st := steps.LoadState(env.WorkDir, settings); st != nil {
		// The state is apply's too: only a failed remove step is resumed here.
		if failed, ok := st.Failed(); ok && slices.ContainsFunc(list, func(s steps.Step) bool { return s.Name() == failed }) {
			fmt.Fprintf(stdio.Out, "resuming: the last run failed at %s\n", failed)
		}
	}
	if err := confirmPlan(ctx, stdio, runner, o.yes, "Remove these?"); err != nil {
		return nil, err
	}
	res, err := runSteps(ctx, runner)
	if err != nil {
		return nil, err
	}
	if res.Ran == 0 {
		fmt.Fprintf(stdio.Out, "nothing changed: all %d steps were done already or skipped\n", res.Skipped+res.Checked)
	} else {
		fmt.Fprintf(stdio.Out, "done: %d steps ran, %d skipped; %s is kept\n", res.Ran, res.Skipped, env.WorkDir)
	}
	if env.Client == nil {
		return nil, nil
	}
	return steps.LeftInCluster(env, o.all), nil
}
