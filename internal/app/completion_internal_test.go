package app

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/spf13/cobra"

	"github.com/vm2mesh/vm2mesh/steps"
)

// The helper a flag such as --limit uses: values from the answers file -f
// names, as a comma-separated list.
func TestCompletionFromAnswersAsCommaList(t *testing.T) {
	answers := filepath.Join(t.TempDir(), "answers.yaml")
	if err := os.WriteFile(answers, []byte("app: web\nnamespace: shop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var limit string
	cmd := &cobra.Command{Use: "x"}
	cmd.Flags().StringP("file", "f", "", "")
	cmd.Flags().StringVar(&limit, "limit", "", "")
	fn := completeCommaList(completeFromAnswers(func(s steps.Settings) []string {
		return []string{s.App + "\tthe app", s.Namespace}
	}))

	if got, d := fn(cmd, nil, ""); len(got) != 0 || d != cobra.ShellCompDirectiveNoFileComp {
		t.Errorf("without -f: %q %v", got, d)
	}
	if err := cmd.Flags().Set("file", answers); err != nil {
		t.Fatal(err)
	}
	if got, d := fn(cmd, nil, ""); !slices.Equal(got, []string{"web\tthe app", "shop"}) || d != cobra.ShellCompDirectiveNoFileComp {
		t.Errorf("with -f: %q %v", got, d)
	}
	if got, d := fn(cmd, nil, "web,"); !slices.Equal(got, []string{"web,shop"}) || d != cobra.ShellCompDirectiveNoFileComp|cobra.ShellCompDirectiveNoSpace {
		t.Errorf("after web,: %q %v", got, d)
	}
	if err := os.WriteFile(answers, []byte("no such key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := fn(cmd, nil, ""); len(got) != 0 {
		t.Errorf("an answers file that does not parse: %q", got)
	}
}
