package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vm2mesh/vm2mesh/steps"
	"github.com/vm2mesh/vm2mesh/ui"
)

type doctorOptions struct {
	answers     string
	output      string
	kubeconfig  string
	kubeContext string
}

func newDoctor(stdio IO) *cobra.Command {
	var o doctorOptions
	cmd := &cobra.Command{
		Use:   "doctor -f answers.yaml [-o text|json]",
		Short: "Check an onboarded VM and its cluster, changing nothing",
		Long: `doctor checks what apply set up, the cluster's side then the VM's, one line a
check with a hint on failure. It only reads: no object, no file on the VM and no
known_hosts entry changes (an unknown host is refused unless vm.hostKeyFingerprint
pins it). Exit 0 when no check failed (warnings do not fail), 1 otherwise.`,
		Args: noArgs("give the answers file with -f answers.yaml"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.answers == "" {
				return errors.New("expecting an answers file: -f answers.yaml")
			}
			if o.output != "text" && o.output != "json" {
				return fmt.Errorf("-o takes text or json, not %q", o.output)
			}
			return runDoctor(cmd.Context(), stdio, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.answers, "file", "f", "", "answers file (YAML; - reads stdin)")
	f.StringVarP(&o.output, "output", "o", "text", "text, or json (one object per check; see README.md)")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (overrides the answers file)")
	f.StringVar(&o.kubeContext, "context", "", "kubeconfig context (overrides kubeContext in the answers file)")
	return cmd
}

// doctorReport is doctor -o json's document.
type doctorReport struct {
	OK     bool                `json:"ok"`
	Checks []steps.CheckResult `json:"checks"`
}

var statusMark = map[steps.CheckStatus]string{
	steps.CheckOK: "✓", steps.CheckFail: "✗", steps.CheckWarn: "!", steps.CheckSkip: "-",
}

func runDoctor(ctx context.Context, stdio IO, o doctorOptions) error {
	settings, k8sOpts, err := steps.Resolve(ctx, o.answers, stdio.In, steps.Flags{Kubeconfig: o.kubeconfig, Context: o.kubeContext})
	if err != nil {
		return err
	}
	section := ""
	print := func(r steps.CheckResult) {
		if o.output != "text" {
			return
		}
		if r.Section != section {
			section = r.Section
			fmt.Fprintf(stdio.Out, "%s:\n", section)
		}
		found := r.Found
		if r.Status == steps.CheckSkip {
			found = "skipped: " + found
		}
		fmt.Fprintf(stdio.Out, " %s %s: %s\n", statusMark[r.Status], r.Name, found)
		if r.Hint != "" && (r.Status == steps.CheckFail || r.Status == steps.CheckWarn) {
			fmt.Fprintf(stdio.Out, "   hint: %s\n", r.Hint)
		}
	}
	// Passwords and passphrases may be asked in a terminal (not when stdin held
	// the answers); host keys never are.
	prompts := terminalPrompts(stdio)
	if o.answers == "-" {
		prompts = steps.Prompts{}
	}
	var results []steps.CheckResult
	if in, out, ok := terminals(stdio); ok && o.output == "text" && o.answers != "-" {
		// A terminal: the checks live, as the wizard's doctor page shows them.
		results, err = ui.RunDoctor(ctx, in, out, ui.RealEngine{K8s: k8sOpts}, settings)
	} else {
		results, err = steps.Doctor(ctx, settings, k8sOpts, prompts, print)
	}
	if err != nil && results == nil {
		return err
	}
	counts := map[steps.CheckStatus]int{}
	for _, r := range results {
		counts[r.Status]++
	}
	if o.output == "json" {
		enc := json.NewEncoder(stdio.Out)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(doctorReport{OK: counts[steps.CheckFail] == 0, Checks: results}); jerr != nil {
			return jerr
		}
	} else {
		fmt.Fprintf(stdio.Out, "doctor: %d ok, %d failed, %d warnings, %d skipped\n",
			counts[steps.CheckOK], counts[steps.CheckFail], counts[steps.CheckWarn], counts[steps.CheckSkip])
	}
	if err != nil {
		return err // interrupted
	}
	if counts[steps.CheckFail] > 0 {
		return &shownError{fmt.Errorf("%d checks failed", counts[steps.CheckFail])}
	}
	return nil
}
