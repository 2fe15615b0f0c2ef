package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/vm2mesh/vm2mesh/remote"
	"github.com/vm2mesh/vm2mesh/steps"
)

// What apply and remove share: how they ask, when they may act, and what they
// say about where they act.

// runPrompts asks on the terminal (nothing when stdin held the answers) and
// prints how the VM will be reached before it is.
func runPrompts(stdio IO, answers string) steps.Prompts {
	prompts := terminalPrompts(stdio)
	if answers == "-" {
		prompts = steps.Prompts{} // stdin held the answers: it has nothing more to say
	}
	prompts.Connecting = func(r remote.Route) {
		fmt.Fprintf(stdio.Out, "vm: connecting as ssh would:\n")
		for _, l := range strings.Split(r.String(), "\n") {
			fmt.Fprintf(stdio.Out, "  %s\n", l)
		}
	}
	return prompts
}

// consent refuses, before anything is contacted, a run that would change
// things with no --yes and no terminal to ask. does says what the command does.
func consent(stdio IO, command, does, answers string, yes, dryRun bool) error {
	if yes || dryRun {
		return nil
	}
	switch {
	case answers == "-":
		return fmt.Errorf("%s -f - read the answers from stdin, so it cannot ask there: add --yes to confirm, or --dry-run to see what it would do", command)
	case !isTerminal(stdio.In):
		return fmt.Errorf("%s %s: add --yes to confirm, or --dry-run to see what it would do (stdin is not a terminal to ask)", command, does)
	}
	return nil
}

// withHint puts a preflight error's advice under it.
func withHint(err error) error {
	if h := steps.HintOf(err); h != "" {
		return fmt.Errorf("%w\n  hint: %s", err, h)
	}
	return err
}

// printVM says which VM the run reached, and how it runs as root there.
func printVM(stdio IO, env *steps.Env) {
	if env.VM != nil {
		fmt.Fprintf(stdio.Out, "vm: %s, %s (%s, %s), root: %s\n", env.VM.Target, env.Facts.OS, env.Facts.Family, env.Facts.Arch, env.Facts.Root)
	}
}

// dryRun writes the plan and its files instead of running.
func dryRun(ctx context.Context, stdio IO, runner *steps.Runner) error {
	files, err := runner.DryRun(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdio.Out, "dry run: nothing was changed. Wrote:\n")
	for _, f := range files {
		fmt.Fprintf(stdio.Out, "  %s\n", f)
	}
	return nil
}

// confirmPlan shows the plan and asks, unless --yes said so already.
func confirmPlan(ctx context.Context, stdio IO, runner *steps.Runner, yes bool, question string) error {
	if yes {
		return nil
	}
	if err := showPlan(ctx, stdio.Out, runner); err != nil {
		return err
	}
	if !confirm(stdio.In, stdio.Out, question) {
		return errNotConfirmed
	}
	return nil
}

// runSteps runs and reports a failure as shown (the printer showed it).
func runSteps(ctx context.Context, runner *steps.Runner) (steps.Result, error) {
	res, err := runner.Run(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		return res, &shownError{err}
	}
	return res, nil
}
