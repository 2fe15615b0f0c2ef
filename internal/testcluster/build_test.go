package testcluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The cache key is the Version field: a scratch module moved to another release
// without it would keep serving the old binary.
func TestToolVersionsMatchTheirModules(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	module := map[string]string{"etcd": "go.etcd.io/etcd/server/v3", "kubernetes": "k8s.io/kubernetes", "kwok": "sigs.k8s.io/kwok", "istio": "istio.io/istio", "helm": "helm.sh/helm/v3", "goreleaser": "github.com/goreleaser/goreleaser/v2"}
	for _, tool := range AllTools() {
		b, err := os.ReadFile(filepath.Join(root, "hack", "tools", tool.Module, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		if want := module[tool.Module] + " " + tool.Version; !strings.Contains(string(b), want) {
			t.Errorf("%s: hack/tools/%s/go.mod does not require %s", tool.Name, tool.Module, want)
		}
		if !strings.Contains(string(b), tool.Package) {
			t.Errorf("%s: hack/tools/%s/go.mod has no tool %s", tool.Name, tool.Module, tool.Package)
		}
	}
}

func TestPruneCacheKeepsTheCurrentBuildAndOthersTools(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VM2MESH_TOOLS_CACHE", dir)
	for _, name := range []string{"kwok-v0.7.0", "kwok-v0.8.0", "kwok-v0.9.0.tmp", "kube-apiserver-v1.33.0", ".kwok.lock"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	PruneCache("kwok-", "kwok-v0.8.0")
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if got, want := strings.Join(left, " "), ".kwok.lock kube-apiserver-v1.33.0 kwok-v0.8.0 kwok-v0.9.0.tmp"; got != want {
		t.Errorf("left %q, want %q", got, want)
	}
}
