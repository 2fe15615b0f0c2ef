package testcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// IstioChart is the path of one of Istio's Helm charts ("base",
// "istio-control/istio-discovery", "gateway") in the istio.io/istio module that
// hack/tools/istio pins, so the charts match the istiod and istioctl built from it.
func IstioChart(name string) (string, error) {
	dir, err := ModuleDir(Istioctl.Module, "istio.io/istio")
	if err != nil {
		return "", err
	}
	chart := filepath.Join(dir, "manifests", "charts", name)
	if _, err := os.Stat(filepath.Join(chart, "Chart.yaml")); err != nil {
		return "", fmt.Errorf("istio.io/istio has no chart %s: %w", name, err)
	}
	return chart, nil
}

// RunHelm runs the helm CLI built from hack/tools/helm with its own homes under
// dir, so it reads no repositories or plugins of this machine's user and writes
// nothing in ~. Charts are local directories: it contacts nothing but the
// kubeconfig's server. It returns helm's output.
func RunHelm(ctx context.Context, dir string, args ...string) (string, error) {
	bin, err := Helm.Path()
	if err != nil {
		return "", err
	}
	home := filepath.Join(dir, "helm-home")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"HELM_NO_PLUGINS=1",
		"KUBECONFIG=/dev/null", // only --kubeconfig counts
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, LastLines(string(out), 30))
	}
	return string(out), nil
}

// HelmInstall installs one of Istio's charts (IstioChart) as release into ns,
// creating ns, with values ("key=value", as --set takes them), and waits until
// its Deployments are Available (with StartWorkloads, kwok makes their pods Ready).
func (c *Cluster) HelmInstall(ctx context.Context, release, chart, ns string, values ...string) (string, error) {
	path, err := IstioChart(chart)
	if err != nil {
		return "", err
	}
	args := []string{"install", release, path, "--kubeconfig", c.Kubeconfig, "--namespace", ns, "--create-namespace", "--wait", "--timeout", "3m"}
	for _, v := range values {
		args = append(args, "--set", v)
	}
	return RunHelm(ctx, c.Dir, args...)
}
