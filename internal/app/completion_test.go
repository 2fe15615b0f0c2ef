package app_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// kubeconfigWith writes a kubeconfig whose contexts are names, current the
// current one.
func kubeconfigWith(t *testing.T, current string, names ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\nusers:\n- name: u\n  user: {}\ncontexts:\n")
	for _, n := range names {
		b.WriteString("- name: " + n + "\n  context:\n    cluster: c\n    user: u\n")
	}
	if current != "" {
		b.WriteString("current-context: " + current + "\n")
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// complete runs the shell's completion request (`vm2mesh __complete ARGS`, as
// the bash, zsh and fish scripts do) and returns the offered values and the
// directive line.
func complete(t *testing.T, env []string, args ...string) (values []string, directive string) {
	t.Helper()
	r := run(t, env, append([]string{"__complete"}, args...)...)
	if r.code != 0 {
		t.Fatalf("__complete %q: exit %d: %s", args, r.code, r.stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if strings.HasPrefix(line, ":") {
			directive = line
			continue
		}
		values = append(values, line)
	}
	return values, directive
}

// --context completes the contexts of the kubeconfig the command would load:
// --kubeconfig, else the answers file's kubeconfig, else $KUBECONFIG (its
// files merged), else ~/.kube/config; on every command that has --context.
func TestCompletionOfContext(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".kube"), 0o700); err != nil {
		t.Fatal(err)
	}
	homeConfig := kubeconfigWith(t, "home", "home")
	data, _ := os.ReadFile(homeConfig)
	if err := os.WriteFile(filepath.Join(home, ".kube", "config"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	first := kubeconfigWith(t, "prod-east", "prod-east", "prod-west")
	second := kubeconfigWith(t, "", "staging")
	flagConfig := kubeconfigWith(t, "", "from-flag")
	answersConfig := kubeconfigWith(t, "", "from-answers")
	answersFile := filepath.Join(t.TempDir(), "answers.yaml")
	if err := os.WriteFile(answersFile, []byte("kubeconfig: "+answersConfig+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noKubeconfig := []string{"HOME=" + home, "KUBECONFIG="}
	merged := []string{"HOME=" + home, "KUBECONFIG=" + first + string(os.PathListSeparator) + second}

	cases := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"~/.kube/config", noKubeconfig, []string{"apply", "--context", ""}, []string{"home\tcurrent context"}},
		{"KUBECONFIG's files merged", merged, []string{"apply", "--context", ""}, []string{"prod-east\tcurrent context", "prod-west", "staging"}},
		{"--kubeconfig over KUBECONFIG", merged, []string{"apply", "--kubeconfig", flagConfig, "--context", ""}, []string{"from-flag"}},
		{"the answers file's kubeconfig", merged, []string{"apply", "-f", answersFile, "--context", ""}, []string{"from-answers"}},
		{"--kubeconfig over the answers file", merged, []string{"apply", "-f", answersFile, "--kubeconfig", flagConfig, "--context", ""}, []string{"from-flag"}},
		{"the wizard", merged, []string{"--context", "prod"}, []string{"prod-east\tcurrent context", "prod-west", "staging"}},
		{"doctor", merged, []string{"doctor", "--context", ""}, []string{"prod-east\tcurrent context", "prod-west", "staging"}},
		{"remove", merged, []string{"remove", "--context", ""}, []string{"prod-east\tcurrent context", "prod-west", "staging"}},
		{"generate (-c)", merged, []string{"generate", "-c", flagConfig, "--context", ""}, []string{"from-flag"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, directive := complete(t, c.env, c.args...)
			if !slices.Equal(got, c.want) {
				t.Errorf("offered %q, want %q", got, c.want)
			}
			if directive != ":4" { // ShellCompDirectiveNoFileComp: never file names
				t.Errorf("directive %s, want :4", directive)
			}
		})
	}

	// An unreadable kubeconfig offers nothing and says so (an error directive),
	// never file names.
	got, directive := complete(t, noKubeconfig, "apply", "--kubeconfig", filepath.Join(home, "missing"), "--context", "")
	if len(got) != 0 || directive != ":5" {
		t.Errorf("missing kubeconfig: offered %q, %s; want nothing, :5", got, directive)
	}
}

// --only completes its two values on every command that has it.
func TestCompletionOfOnly(t *testing.T) {
	for _, cmd := range [][]string{{}, {"apply"}, {"remove"}} {
		got, directive := complete(t, nil, append(cmd, "--only", "")...)
		var names []string
		for _, v := range got {
			name, _, _ := strings.Cut(v, "\t")
			names = append(names, name)
		}
		if !slices.Equal(names, []string{"cluster", "vm"}) || directive != ":4" {
			t.Errorf("%q --only: offered %q, %s", cmd, got, directive)
		}
	}
	if got, _ := complete(t, nil, "version", "-o", ""); len(got) != 2 || !strings.HasPrefix(got[0], "json") && !strings.HasPrefix(got[0], "text") {
		t.Errorf("version -o: offered %q", got)
	}
}

// The completion scripts the packages install come from the binary itself.
func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := run(t, nil, "completion", sh)
		if r.code != 0 || !strings.Contains(r.stdout, "vm2mesh") || !strings.Contains(r.stdout, "__complete") {
			t.Errorf("completion %s: exit %d, %d bytes: %s", sh, r.code, len(r.stdout), r.stderr)
		}
	}
}
