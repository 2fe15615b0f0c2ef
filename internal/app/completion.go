package app

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/steps"
)

// Shell completion that knows the domain. cobra adds the `completion bash|zsh|
// fish|powershell` command; the functions here answer for flag values. Every
// command's --context completes the kubeconfig's contexts and --only its two
// halves: registerCompletions walks the command tree, so a new command gets them
// without a line of its own. (--limit, the VM names of the answers file, is
// registered where it is defined: addFleetFlags in apply.go.)

// registerCompletions gives every command in the tree the completions of the
// flags it has, unless the command registered its own.
func registerCompletions(root *cobra.Command) {
	flags := map[string]cobra.CompletionFunc{
		"context": completeContexts,
		"only": completeValues(
			"cluster\tthe cluster half: control plane, gateway, WorkloadGroup, the VM's files",
			"vm\tthe VM half over SSH, from the files in workDir"),
	}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for name, fn := range flags {
			if c.Flags().Lookup(name) == nil {
				continue
			}
			if _, ok := c.GetFlagCompletionFunc(name); ok {
				continue
			}
			_ = c.RegisterFlagCompletionFunc(name, fn)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completeValues offers fixed values, each "value" or "value\tdescription".
func completeValues(values ...string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeContexts offers the contexts of the kubeconfig the command would
// load, as kubectl loads it: --kubeconfig, else the answers file's kubeconfig
// (-f), else $KUBECONFIG (its files merged), else ~/.kube/config. The current
// context says so in its description.
func completeContexts(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	kubeconfig := flagValue(cmd, "kubeconfig")
	if kubeconfig == "" {
		if s, ok := answersForCompletion(cmd); ok {
			kubeconfig = s.Kubeconfig
		}
	}
	names, current, err := k8s.Contexts(expandHome(kubeconfig))
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	slices.Sort(names)
	out := make([]cobra.Completion, 0, len(names))
	for _, n := range names {
		if n == current {
			out = append(out, cobra.CompletionWithDesc(n, "current context"))
		} else {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// answersForCompletion reads the answers file -f names, if any, within a
// second (a completion must not hang the shell).
func answersForCompletion(cmd *cobra.Command) (steps.Settings, bool) {
	path := flagValue(cmd, "file")
	if path == "" || path == "-" {
		return steps.Settings{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := steps.LoadAnswers(ctx, expandHome(path), nil)
	return s, err == nil
}

// flagValue is a string flag's value, "" when the command has no such flag.
func flagValue(cmd *cobra.Command, name string) string {
	f := cmd.Flags().Lookup(name)
	if f == nil {
		return ""
	}
	return f.Value.String()
}

// expandHome expands a leading ~/, which a shell leaves as typed in the words
// it hands to completion.
func expandHome(path string) string {
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return path
}
