// Package e2e runs the whole onboarding: one `vm2mesh apply` against a real
// control plane (etcd, kube-apiserver, controller manager, scheduler, kwok), a
// real istiod and istioctl, and a sandbox VM whose real pilot-agent must get a
// certificate signed by the mesh's CA.
//
// Everything runs inside a network namespace this package makes: loopback, the
// veths to its own VMs, and no route anywhere else. What needs the network
// (building vm2mesh and the harness's tools, the VM image) happens first, outside;
// then this test binary runs itself again inside the namespace.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
	"github.com/vm2mesh/vm2mesh/internal/testvm"
)

// Set in the isolated run by the preparing one.
const (
	isolatedEnv = "VM2MESH_E2E_ISOLATED"
	binaryEnv   = "VM2MESH_E2E_BINARY"
	packageEnv  = "VM2MESH_E2E_PACKAGE"
	// The fleet's RHEL VMs: the same agent as an .rpm, and their base provides.
	packageRPMEnv  = "VM2MESH_E2E_PACKAGE_RPM"
	providesRPMEnv = "VM2MESH_E2E_PROVIDES_RPM"
)

// skipReason is why the tests skip on this machine, or "".
var skipReason string

func TestMain(m *testing.M) {
	if os.Getenv(isolatedEnv) != "" {
		if err := isolatedSetUp(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			os.Exit(1)
		}
		os.Exit(m.Run())
	}
	if os.Geteuid() != 0 {
		skipReason = "the end-to-end test needs root (a network namespace, sandbox VMs); CI runs it as root"
		os.Exit(m.Run())
	}
	code, err := prepareAndRunIsolated()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// prepareAndRunIsolated builds what the isolated run needs, then runs this test
// binary again, with the same flags, in a new network namespace.
func prepareAndRunIsolated() (int, error) {
	dir, err := os.MkdirTemp("", "vm2mesh-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	root, err := testcluster.RepoRoot()
	if err != nil {
		return 0, err
	}
	binary := filepath.Join(dir, "vm2mesh")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("building vm2mesh: %v\n%s", err, out)
	}
	for _, t := range append(testcluster.ControlPlaneTools, testcluster.EndToEndTools...) {
		if _, err := t.Path(); err != nil {
			return 0, err
		}
	}
	if _, err := testvm.BuildImage(); err != nil {
		return 0, err
	}
	agent, err := testcluster.PilotAgent.Path()
	if err != nil {
		return 0, err
	}
	pkg, err := testvm.BuildAgentPackage(filepath.Join(dir, "package"), agent)
	if err != nil {
		return 0, err
	}
	rpms, err := testvm.BuildAgentRPM(filepath.Join(dir, "rpm"), agent)
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), isolatedEnv+"=1", binaryEnv+"="+binary, packageEnv+"="+pkg,
		packageRPMEnv+"="+rpms.Sidecar, providesRPMEnv+"="+rpms.BaseProvides)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	err = cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("running the tests in a new network namespace: %w", err)
	}
	return 0, nil
}

// isolatedSetUp brings loopback up and checks the namespace has nothing else.
func isolatedSetUp() error {
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set lo up: %v: %s", err, out)
	}
	links, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		return err
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(links)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, strings.TrimSuffix(f[1], ":"))
		}
	}
	routes, err := exec.Command("ip", "route", "show", "table", "all").Output()
	if err != nil {
		return err
	}
	var nonLocal []string
	for _, r := range strings.Split(strings.TrimSpace(string(routes)), "\n") {
		if r != "" && !strings.Contains(r, "dev lo") {
			nonLocal = append(nonLocal, r)
		}
	}
	if len(names) != 1 || names[0] != "lo" || len(nonLocal) > 0 {
		return fmt.Errorf("the test's network namespace is not isolated: links %v, routes %v", names, nonLocal)
	}
	fmt.Printf("e2e: in a network namespace of its own: links [lo], no routes beyond loopback\n")
	return nil
}

func skipUnlessIsolated(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}
