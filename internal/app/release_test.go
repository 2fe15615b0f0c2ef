package app_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
	"github.com/vm2mesh/vm2mesh/internal/testvm"
)

// The release's .deb, installed into a fresh Debian sandbox VM with dpkg -i as
// root, puts vm2mesh on PATH with its shell completions, and `vm2mesh version`
// there reports the commit the snapshot was built from: this checkout's HEAD.
// The snapshot is the one hack/test builds with goreleaser (its dist directory
// in VM2MESH_RELEASE_DIST); a release build takes minutes, so the test does not
// make its own.
func TestReleaseDebInstallsInAVM(t *testing.T) {
	testvm.Skip(t)
	dist := os.Getenv("VM2MESH_RELEASE_DIST")
	if dist == "" {
		t.Skip("no snapshot release to install: ./hack/test builds one with goreleaser and names its dist directory in VM2MESH_RELEASE_DIST")
	}
	root, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	head := git(t, root, "rev-parse", "HEAD")
	var meta struct {
		Commit  string `json:"commit"`
		Version string `json:"version"`
	}
	if b, err := os.ReadFile(filepath.Join(dist, "metadata.json")); err != nil {
		t.Fatalf("VM2MESH_RELEASE_DIST=%s is not a goreleaser dist: %v", dist, err)
	} else if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatalf("%s/metadata.json: %v", dist, err)
	}
	if meta.Commit != head {
		t.Fatalf("the snapshot in %s is of commit %q, this checkout's HEAD is %s: build it again (./hack/test does)", dist, meta.Commit, head)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "vm2mesh_*_"+runtime.GOARCH+".deb"))
	if len(debs) != 1 {
		t.Fatalf("want one vm2mesh_*_%s.deb in %s, found %q", runtime.GOARCH, dist, debs)
	}
	deb, err := os.ReadFile(debs[0])
	if err != nil {
		t.Fatal(err)
	}

	vm := testvm.Start(t, testvm.Options{Files: map[string]testvm.File{
		"/root/vm2mesh.deb": {Data: string(deb), Mode: 0o644},
	}})
	if out := vm.MustExec(t, "command -v vm2mesh || echo absent"); strings.TrimSpace(out) != "absent" {
		t.Fatalf("the fresh VM already has vm2mesh: %s", out)
	}
	vm.MustExec(t, "dpkg -i /root/vm2mesh.deb")
	v := parseVersionJSON(t, vm.MustExec(t, "cd / && vm2mesh version -o json"))
	if v.Commit != head || v.Source != "release" || v.Version != "v"+meta.Version || v.Date == "" || v.Platform != "linux/"+runtime.GOARCH {
		t.Errorf("vm2mesh version -o json in the VM: %+v; want commit %s, source release, version v%s", v, head, meta.Version)
	}
	line := vm.MustExec(t, "vm2mesh version")
	if !strings.HasPrefix(line, "vm2mesh v"+meta.Version+" (commit "+head[:7]) {
		t.Errorf("vm2mesh version in the VM: %q", line)
	}
	listed := vm.MustExec(t, "dpkg -L vm2mesh")
	for _, f := range []string{
		"/usr/bin/vm2mesh",
		"/usr/share/bash-completion/completions/vm2mesh",
		"/usr/share/zsh/vendor-completions/_vm2mesh",
		"/usr/share/fish/vendor_completions.d/vm2mesh.fish",
		"/usr/share/doc/vm2mesh/LICENSE",
	} {
		if !strings.Contains(listed, f+"\n") {
			t.Errorf("the package does not install %s; it has:\n%s", f, listed)
		}
	}
	if out := vm.MustExec(t, "head -c 200 /usr/share/bash-completion/completions/vm2mesh"); !strings.Contains(out, "vm2mesh") {
		t.Errorf("bash completion: %q", out)
	}
}
