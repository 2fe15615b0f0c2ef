package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/steps"
	"github.com/vm2mesh/vm2mesh/ui"
)

type doctorOptions struct {
	answers     string
	output      string
	kubeconfig  string
	kubeContext string
	limit       string
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
	addFleetFlags(cmd, &o.limit, nil, &o.answers)
	return cmd
}

// doctorReport is doctor -o json's document.
type doctorReport struct {
	OK     bool                `json:"ok"`
	Checks []steps.CheckResult `json:"checks"`
}

// fleetDoctorReport is doctor -o json's document for a fleet: each VM's.
type fleetDoctorReport struct {
	OK  bool             `json:"ok"`
	VMs []vmDoctorReport `json:"vms"`
}

type vmDoctorReport struct {
	Name string `json:"name"`
	doctorReport
}

var statusMark = map[steps.CheckStatus]string{
	steps.CheckOK: "✓", steps.CheckFail: "✗", steps.CheckWarn: "!", steps.CheckSkip: "-",
}

func runDoctor(ctx context.Context, stdio IO, o doctorOptions) error {
	fleet, k8sOpts, err := loadFleet(ctx, stdio, o.answers, o.limit, steps.Flags{Kubeconfig: o.kubeconfig, Context: o.kubeContext})
	if err != nil {
		return err
	}
	if fleet.Single {
		report, err := doctorOne(ctx, stdio, o, k8sOpts, fleet.Settings)
		if report == nil {
			return err
		}
		if o.output == "json" {
			if jerr := encodeJSON(stdio, report); jerr != nil {
				return jerr
			}
		}
		if err != nil {
			return err
		}
		return doctorOutcome(report.Checks)
	}
	// A fleet: each VM's checks in turn, under its name.
	var all fleetDoctorReport
	all.OK = true
	var failed []string
	interrupted := false
	for _, vm := range fleet.VMs {
		if o.output == "text" {
			fmt.Fprintf(stdio.Out, "== %s\n", vm.Name)
		}
		report, err := doctorOne(ctx, stdio, o, k8sOpts, vm.Settings)
		if report == nil {
			if ctx.Err() != nil {
				return err
			}
			report = &doctorReport{}
			if o.output == "text" {
				fmt.Fprintf(stdio.Out, "%s: %s\n", vm.Name, err)
			}
		}
		all.VMs = append(all.VMs, vmDoctorReport{Name: vm.Name, doctorReport: *report})
		if !report.OK || err != nil {
			all.OK = false
			failed = append(failed, vm.Name)
		}
		if ctx.Err() != nil || errors.Is(err, context.Canceled) { // Ctrl+C in the live checks
			interrupted = true
			break
		}
	}
	if o.output == "json" {
		if err := encodeJSON(stdio, all); err != nil {
			return err
		}
	} else if len(failed) > 0 {
		fmt.Fprintf(stdio.Out, "doctor: %d of %d VMs failed a check: %s\n", len(failed), len(fleet.VMs), strings.Join(failed, ", "))
	} else {
		fmt.Fprintf(stdio.Out, "doctor: all %d VMs passed\n", len(fleet.VMs))
	}
	if interrupted {
		return context.Canceled
	}
	if len(failed) > 0 {
		return &shownError{fmt.Errorf("%d VMs failed a check", len(failed))}
	}
	return nil
}

func encodeJSON(stdio IO, v any) error {
	enc := json.NewEncoder(stdio.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func doctorOutcome(results []steps.CheckResult) error {
	n := 0
	for _, r := range results {
		if r.Status == steps.CheckFail {
			n++
		}
	}
	if n > 0 {
		return &shownError{fmt.Errorf("%d checks failed", n)}
	}
	return nil
}

// doctorOne runs the checks of one VM's settings, printing them as text when
// asked; the report is nil when nothing could be checked.
func doctorOne(ctx context.Context, stdio IO, o doctorOptions, k8sOpts k8s.Options, settings steps.Settings) (*doctorReport, error) {
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
	var err error
	if in, out, ok := terminals(stdio); ok && o.output == "text" && o.answers != "-" {
		// A terminal: the checks live, as the wizard's doctor page shows them.
		results, err = ui.RunDoctor(ctx, in, out, ui.RealEngine{K8s: k8sOpts}, settings)
	} else {
		results, err = steps.Doctor(ctx, settings, k8sOpts, prompts, print)
	}
	if err != nil && results == nil {
		return nil, err
	}
	counts := map[steps.CheckStatus]int{}
	for _, r := range results {
		counts[r.Status]++
	}
	if o.output == "text" {
		fmt.Fprintf(stdio.Out, "doctor: %d ok, %d failed, %d warnings, %d skipped\n",
			counts[steps.CheckOK], counts[steps.CheckFail], counts[steps.CheckWarn], counts[steps.CheckSkip])
	}
	return &doctorReport{OK: counts[steps.CheckFail] == 0, Checks: results}, err
}
