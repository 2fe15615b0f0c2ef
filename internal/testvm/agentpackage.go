package testvm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
)

// envoyStandIn is the package of the STAND-IN for Envoy: the end-to-end test
// proves the agent's onboarding (its certificate from istiod, its
// WorkloadEntry), not the data path. It keeps an ADS stream open to the
// agent's XDS proxy with the bootstrap's node, so istiod registers the VM, and
// stays up, as pilot-agent ends when Envoy does.
const envoyStandIn = "github.com/vm2mesh/vm2mesh/internal/testvm/envoystandin"

// buildEnvoyStandIn builds envoyStandIn for the VM (static: the VM's root is
// not this machine's). It is built here, not linked into anything, so
// go-control-plane stays out of vm2mesh's binary.
func buildEnvoyStandIn(dir string) ([]byte, error) {
	root, err := testcluster.RepoRoot()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "envoy-standin")
	cmd := exec.Command("go", "build", "-o", bin, envoyStandIn)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the Envoy stand-in: %v\n%s", err, out)
	}
	return os.ReadFile(bin)
}

// BuildAgentPackage builds an istio-sidecar .deb as Istio lays it out, from
// Istio's own files: the pilot-agent binary the harness built from the
// istio.io/istio module, and that module's tools/packaging istio-start.sh,
// istio.service, sidecar.env, Envoy bootstrap template and postinst,
// where its packaging.mk puts them. Only Envoy is a stand-in
// (envoyStandIn).
func BuildAgentPackage(dir, pilotAgent string) (string, error) {
	files, postinst, err := agentTree(dir, pilotAgent)
	if err != nil {
		return "", err
	}
	control := fmt.Sprintf(`Package: istio-sidecar
Version: 1.31.1-vm2mesh-%s
Architecture: amd64
Maintainer: vm2mesh tests <tests@vm2mesh.invalid>
Depends: iproute2, iptables, sudo, hostname
Description: Istio's sidecar package with the real pilot-agent and a stand-in Envoy (vm2mesh tests)
`, "realagent")
	return buildDeb(dir, files, postinst, control)
}

// agentTree is the istio-sidecar package's files and post-install, as
// BuildAgentPackage describes them.
func agentTree(dir, pilotAgent string) (map[string]treeFile, string, error) {
	istio, err := testcluster.ModuleDir(testcluster.PilotAgent.Module, "istio.io/istio")
	if err != nil {
		return nil, "", err
	}
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(istio, "tools", "packaging", name))
		return string(b), err
	}
	agent, err := os.ReadFile(pilotAgent)
	if err != nil {
		return nil, "", err
	}
	envoy, err := buildEnvoyStandIn(filepath.Join(dir, "build"))
	if err != nil {
		return nil, "", err
	}
	files := map[string]treeFile{
		"usr/local/bin/pilot-agent": {string(agent), 0o755},
		"usr/local/bin/envoy":       {string(envoy), 0o755},
	}
	for path, name := range map[string]string{
		"usr/local/bin/istio-start.sh":     "common/istio-start.sh",
		"lib/systemd/system/istio.service": "common/istio.service",
		"var/lib/istio/envoy/sidecar.env":  "common/sidecar.env",
		// As tools/packaging/packaging.mk installs it.
		"var/lib/istio/envoy/envoy_bootstrap_tmpl.json": "common/envoy_bootstrap.json",
	} {
		data, err := read(name)
		if err != nil {
			return nil, "", err
		}
		mode := os.FileMode(0o644)
		if filepath.Ext(path) == ".sh" {
			mode = 0o755
		}
		files[path] = treeFile{data, mode}
	}
	postinst, err := read("postinst.sh")
	if err != nil {
		return nil, "", err
	}
	return files, postinst, nil
}
