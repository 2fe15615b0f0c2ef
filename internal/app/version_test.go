package app_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
)

// versionJSON is `vm2mesh version -o json` (README, "Which vm2mesh").
type versionJSON struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Dirty     bool   `json:"dirty"`
	Date      string `json:"date"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
	Source    string `json:"source"`
}

func parseVersionJSON(t *testing.T, out string) versionJSON {
	t.Helper()
	var v versionJSON
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("vm2mesh version -o json: %v\n%s", err, out)
	}
	return v
}

// git runs git in dir and returns its trimmed output.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s in %s: %v", strings.Join(args, " "), dir, err)
	}
	return strings.TrimSpace(string(out))
}

// checkGoBuild builds vm2mesh in dir, a git checkout, as a user would (go
// build -o) and checks that `vm2mesh version -o json` reports the checkout's
// HEAD and whether its tree has changes.
func checkGoBuild(t *testing.T, dir string) versionJSON {
	t.Helper()
	head := git(t, dir, "rev-parse", "HEAD")
	bin := filepath.Join(t.TempDir(), "vm2mesh")
	// -buildvcs=true: a GOFLAGS=-buildvcs=false in the environment would
	// otherwise turn the stamping off (go build's default is auto, i.e. on).
	build := exec.Command("go", "build", "-buildvcs=true", "-trimpath", "-o", bin, ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in %s: %v\n%s", dir, err, out)
	}
	dirty := git(t, dir, "status", "--porcelain") != ""
	r := runCmd(t, bin, "version", "-o", "json")
	if r.code != 0 {
		t.Fatalf("version -o json: exit %d: %s", r.code, r.stderr)
	}
	v := parseVersionJSON(t, r.stdout)
	if v.Commit != head || v.Dirty != dirty || v.Source != "go build" || v.Date == "" {
		t.Errorf("go build of %s (HEAD %s, changes in the tree: %v) reports %+v", dir, head, dirty, v)
	}
	if r := runCmd(t, bin, "version"); !strings.HasPrefix(r.stdout, "vm2mesh "+v.Version+" (commit "+head[:7]) {
		t.Errorf("version: %q, want it to start with vm2mesh %s (commit %s", r.stdout, v.Version, head[:7])
	}
	return v
}

// A go build binary reports its vcs revision. Go stamps it only where .git is
// a directory (cmd/go's vcs lookup), not in a `git worktree` checkout, whose
// .git is a file: there the test builds a clone of HEAD instead, once as
// committed and once with a change.
func TestGoBuildReportsItsRevision(t *testing.T) {
	root, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: go build cannot stamp a revision")
	}
	st, err := os.Stat(filepath.Join(root, ".git"))
	if err != nil {
		t.Skipf("%s is not a git checkout (a source archive?): go build has no revision to stamp", root)
	}
	if st.IsDir() {
		checkGoBuild(t, root)
		return
	}
	t.Logf("%s is a git worktree; Go stamps no revision there, so a clone of HEAD is built", root)
	clone := filepath.Join(t.TempDir(), "vm2mesh")
	git(t, root, "clone", "--quiet", "--no-hardlinks", root, clone)
	git(t, clone, "checkout", "--quiet", "--detach", git(t, root, "rev-parse", "HEAD"))
	if v := checkGoBuild(t, clone); v.Dirty {
		t.Errorf("a fresh clone reports changes: %+v", v)
	}
	if err := os.WriteFile(filepath.Join(clone, "README.md"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v := checkGoBuild(t, clone); !v.Dirty || !strings.HasSuffix(v.Version, "+dirty") {
		t.Errorf("a clone with a change reports %+v, want dirty and a +dirty pseudo-version", v)
	}
}

func TestVersionRefusesAnUnknownFormat(t *testing.T) {
	r := run(t, nil, "version", "-o", "yaml")
	if r.code != 1 || !strings.Contains(r.stderr, `--output "yaml"`) || !strings.Contains(r.stderr, "-o json") {
		t.Errorf("version -o yaml: exit %d, %q", r.code, r.stderr)
	}
}
