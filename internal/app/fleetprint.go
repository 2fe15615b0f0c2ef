package app

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vm2mesh/vm2mesh/steps"
)

// fleetPrinter writes a fleet's events: the fleet of one as it always did; a
// fleet one line per event, each prefixed with its VM's name (or its
// WorkloadGroup's, for the cluster half), the names aligned.
type fleetPrinter struct {
	w        io.Writer
	single   bool
	width    int
	printers map[string]*printer
	only     string // --only
}

func newFleetPrinter(w io.Writer, f steps.Fleet) *fleetPrinter {
	p := &fleetPrinter{w: w, single: f.Single, printers: map[string]*printer{}}
	for _, vm := range f.VMs {
		p.width = max(p.width, len(vm.Name))
	}
	return p
}

func groupLabel(g steps.Group) string { return "group " + g.String() }

// prefixWriter puts the prefix before every line written to w.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	lines := strings.SplitAfter(string(b), "\n")
	var out strings.Builder
	for _, l := range lines {
		if l != "" {
			out.WriteString(p.prefix + l)
		}
	}
	_, err := io.WriteString(p.w, out.String())
	return len(b), err
}

func (p *fleetPrinter) prefix(name string) string {
	return fmt.Sprintf("%-*s │", p.width, name)
}

func (p *fleetPrinter) printer(name string) *printer {
	if pr := p.printers[name]; pr != nil {
		return pr
	}
	var w io.Writer = p.w
	if !p.single {
		w = prefixWriter{w: p.w, prefix: p.prefix(name)}
	}
	pr := &printer{w: w}
	p.printers[name] = pr
	return pr
}

// event prints one event; FleetRun calls it one at a time.
func (p *fleetPrinter) event(e steps.FleetEvent) {
	name := e.VM
	if name == "" {
		name = groupLabel(e.Group)
	}
	p.printer(name).event(e.Event)
}

// vms says which VMs the fleet reached and which it will not run.
func (p *fleetPrinter) vms(sts []steps.VMStatus) {
	for _, st := range sts {
		w := p.printer(st.Name).w
		switch {
		case st.State == steps.VMDoneBefore:
			fmt.Fprintf(w, " • done in an earlier run (%s); not contacted\n", steps.StatePath(st.WorkDir))
		case st.OS != "":
			fmt.Fprintf(w, " vm: %s, %s\n", st.Target, st.OS)
		}
	}
}

// resuming says where each pipeline's last run failed.
func (p *fleetPrinter) resuming(runners []*steps.Runner) {
	for _, r := range runners {
		st := steps.LoadState(r.Env.WorkDir, r.Env.Settings)
		failed, ok := st.Failed()
		if !ok {
			continue
		}
		w := p.w
		if !p.single {
			w = prefixWriter{w: p.w, prefix: p.prefix(p.nameOf(r)) + " "}
		}
		fmt.Fprintf(w, "resuming: the last run failed at %s\n", failed)
	}
}

func (p *fleetPrinter) nameOf(r *steps.Runner) string {
	s := r.Env.Settings
	if s.VM.Host == "" {
		return groupLabel(steps.GroupOf(s))
	}
	return strings.TrimPrefix(r.Env.WorkDir[strings.LastIndex(r.Env.WorkDir, "/"):], "/")
}

// summary prints the table of VMs and returns the run's outcome: nil when
// every VM succeeded, the context's error when interrupted, else an error
// naming the failed VMs.
func (p *fleetPrinter) summary(ctx context.Context, groups map[steps.Group]error, sts []steps.VMStatus) error {
	fmt.Fprintln(p.w)
	for g, err := range groups {
		if err != nil {
			fmt.Fprintf(p.w, "the cluster half of WorkloadGroup %s failed: %s\n", g, oneLine(err.Error()))
		}
	}
	fmt.Fprintln(p.w, "summary:")
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  VM\tRESULT\tSTEP\tTIME\tHINT")
	var failed, interrupted []string
	done := 0
	for _, st := range sts {
		result, hint := "done", ""
		switch st.State {
		case steps.VMDone:
			done++
		case steps.VMDoneBefore:
			result = "done before"
			done++
		case steps.VMFailed:
			result = "FAILED"
			hint = st.Hint
			if hint == "" && st.Err != nil {
				hint = st.Err.Error()
			}
			failed = append(failed, st.Name)
		case steps.VMInterrupted:
			result = "interrupted"
			interrupted = append(interrupted, st.Name)
		default:
			result = string(st.State)
		}
		step := st.Title
		if st.Steps > 0 && st.StepIndex > 0 && st.State != steps.VMDoneBefore {
			step = fmt.Sprintf("%d/%d %s", st.StepIndex, st.Steps, st.Title)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", st.Name, result, step, st.Elapsed().Round(100*time.Millisecond), oneLine(hint))
	}
	tw.Flush()
	switch {
	case ctx.Err() != nil || len(interrupted) > 0:
		fmt.Fprintf(p.w, "interrupted: %d of %d VMs done; every VM's progress is saved, run the same command again to resume\n", done, len(sts))
		return ctx.Err()
	case len(failed) > 0:
		fmt.Fprintf(p.w, "%d of %d VMs failed: %s; fix what the hints say and run the same command again: it resumes them and skips the VMs that are done (--limit %s runs only them)\n",
			len(failed), len(sts), strings.Join(failed, ", "), strings.Join(failed, ","))
		return &shownError{fmt.Errorf("%d VMs failed: %s", len(failed), strings.Join(failed, ", "))}
	}
	if p.only == steps.HalfCluster {
		fmt.Fprintf(p.w, "done: the files of all %d VMs are in their directories under %s\n", len(sts), steps.FleetVMsDir)
		return nil
	}
	fmt.Fprintf(p.w, "done: all %d VMs are in the mesh\n", len(sts))
	return nil
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// dryRunAll writes every pipeline's plan and files.
func dryRunAll(ctx context.Context, stdio IO, runners []*steps.Runner) error {
	if len(runners) == 1 {
		return dryRun(ctx, stdio, runners[0])
	}
	fmt.Fprintf(stdio.Out, "dry run: nothing was changed. Wrote:\n")
	for _, r := range runners {
		files, err := r.DryRun(ctx)
		if err != nil {
			return err
		}
		for _, f := range files {
			fmt.Fprintf(stdio.Out, "  %s\n", f)
		}
	}
	return nil
}

// confirmFleetPlan is confirmPlan for a fleet: each group's cluster half, then
// the first VM's pipeline as every VM's.
func confirmFleetPlan(ctx context.Context, stdio IO, run *steps.FleetRun, yes bool, question string) error {
	runners := run.Runners()
	if run.Fleet.Single {
		return confirmPlan(ctx, stdio, runners[0], yes, question)
	}
	if yes || len(runners) == 0 {
		return nil
	}
	var vms []string
	shownVM := false
	for _, r := range runners {
		if r.Env.Settings.VM.Host == "" {
			fmt.Fprintf(stdio.Out, "WorkloadGroup %s, once:\n", steps.GroupOf(r.Env.Settings))
		} else {
			vms = append(vms, r.Env.Settings.VM.Host)
			if shownVM {
				continue
			}
			shownVM = true
			fmt.Fprintf(stdio.Out, "each VM, as the first (%s):\n", r.Env.Settings.VM.Host)
		}
		if err := showPlan(ctx, stdio.Out, r); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdio.Out, "VMs: %s (%d at a time)\n", strings.Join(vms, ", "), run.Parallel)
	if !confirm(stdio.In, stdio.Out, question) {
		return errNotConfirmed
	}
	return nil
}
