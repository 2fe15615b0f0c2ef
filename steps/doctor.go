package steps

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vm2mesh/vm2mesh/k8s"
)

// Doctor: read-only checks of an onboarded VM, the cluster's side first. Each
// check is one line (what it found) with a hint when it fails; a check whose
// prerequisite failed or was skipped is skipped and says which. Nothing is
// changed anywhere: no object, no file on the VM, no known_hosts entry.

// CheckStatus is a check's outcome; only CheckFail makes doctor fail.
type CheckStatus string

const (
	CheckOK   CheckStatus = "ok"
	CheckFail CheckStatus = "fail"
	CheckWarn CheckStatus = "warn"
	CheckSkip CheckStatus = "skip"
)

// Doctor's sections, cluster first.
const (
	SectionCluster = "cluster"
	SectionVM      = "vm"
)

// CheckResult is one check's line; its JSON is doctor -o json's schema
// (README.md, "vm2mesh doctor").
type CheckResult struct {
	Name    string      `json:"name"`
	Section string      `json:"section"`
	Status  CheckStatus `json:"status"`
	Found   string      `json:"found"`
	Hint    string      `json:"hint"`
}

// doctorCheck is one entry of the check list: its prerequisites by name, and
// the function that looks.
type doctorCheck struct {
	name, section string
	needs         []string
	timeout       time.Duration // 0: checkTimeout
	run           func(ctx context.Context, d *doctor) CheckResult
}

// checkTimeout bounds each check: every cluster call and remote command in it.
const checkTimeout = 30 * time.Second

// doctorChecks is the check list, in the order they run and print.
var doctorChecks = []doctorCheck{
	{name: "cluster-api", section: SectionCluster, run: checkClusterAPI},
	{name: "istiod", section: SectionCluster, needs: []string{"cluster-api"}, run: checkIstiod},
	{name: "gateway", section: SectionCluster, needs: []string{"cluster-api"}, run: checkGateway},
	{name: "expose-istiod", section: SectionCluster, needs: []string{"cluster-api"}, run: checkExposeIstiod},
	{name: "namespace", section: SectionCluster, needs: []string{"cluster-api"}, run: checkNamespace},
	{name: "workloadgroup", section: SectionCluster, needs: []string{"namespace"}, run: checkWorkloadGroup},
	{name: "workloadentry", section: SectionCluster, needs: []string{"workloadgroup"}, run: checkWorkloadEntry},

	{name: "vm-ssh", section: SectionVM, timeout: 90 * time.Second, run: checkSSH},
	{name: "vm-package", section: SectionVM, needs: []string{"vm-ssh"}, run: checkPackage},
	{name: "vm-file-root-cert", section: SectionVM, needs: []string{"vm-package"}, run: placedFile("root-cert.pem")},
	{name: "vm-file-istio-token", section: SectionVM, needs: []string{"vm-package"}, run: placedFile("istio-token")},
	{name: "vm-file-cluster-env", section: SectionVM, needs: []string{"vm-package"}, run: placedFile("cluster.env")},
	{name: "vm-file-mesh", section: SectionVM, needs: []string{"vm-package"}, run: placedFile("mesh.yaml")},
	{name: "vm-root-cert", section: SectionVM, needs: []string{"vm-file-root-cert"}, run: checkRootCert},
	{name: "vm-agent-cert", section: SectionVM, needs: []string{"vm-package"}, run: checkAgentCert},
	{name: "vm-token", section: SectionVM, needs: []string{"vm-file-istio-token"}, run: checkToken},
	{name: "vm-agent", section: SectionVM, needs: []string{"vm-package"}, run: checkAgentRunning},
	{name: "vm-hosts", section: SectionVM, needs: []string{"vm-ssh"}, run: checkHostsLine},
	{name: "vm-istiod-port", section: SectionVM, needs: []string{"vm-ssh"}, run: checkIstiodPort},
	{name: "vm-iptables", section: SectionVM, needs: []string{"vm-ssh"}, run: checkIptables},
	{name: "vm-dns-capture", section: SectionVM, needs: []string{"vm-iptables"}, run: checkDNSCapture},
	{name: "vm-agent-log", section: SectionVM, needs: []string{"vm-package"}, run: checkAgentLog},
}

// DoctorCheckNames lists the checks in order (for tests and docs).
func DoctorCheckNames() []string {
	var out []string
	for _, c := range doctorChecks {
		out = append(out, c.name)
	}
	return out
}

// doctor is what the checks of one run share.
type doctor struct {
	env     *Env
	o       k8s.Options
	prompts Prompts
	// From the work directory's hosts file: what the VM should resolve istiod to.
	gatewayIP, istiodName string
	hostsErr              error
	// The agent's certificate, read once (vm-agent-cert) for vm-token.
	agentCertValid bool
}

// Doctor runs the checks in order, calling each (if not nil) as its result is
// known, and returns them all. The error is for settings that cannot be
// checked at all (the answers file's own mistakes); a failing check is a result.
//
// p answers the VM's login (passwords, a key's passphrase) where a terminal can
// ask; an unknown host key is never asked about: doctor refuses it unless pinned.
func Doctor(ctx context.Context, s Settings, o k8s.Options, p Prompts, each func(CheckResult)) ([]CheckResult, error) {
	env, err := NewEnv(s)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	p.HostKey, p.Connecting, p.NeverRememberHostKey = nil, nil, true
	d := &doctor{env: env, o: o, prompts: p}
	d.gatewayIP, d.istiodName, d.hostsErr = gatewayFromHosts(env)

	status := map[string]CheckStatus{}
	var results []CheckResult
	for _, c := range doctorChecks {
		r := d.runCheck(ctx, c, status)
		r.Name, r.Section = c.name, c.section
		status[c.name] = r.Status
		results = append(results, r)
		if each != nil {
			each(r)
		}
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
	}
	return results, nil
}

func (d *doctor) runCheck(ctx context.Context, c doctorCheck, status map[string]CheckStatus) CheckResult {
	for _, n := range c.needs {
		switch status[n] {
		case CheckFail:
			return skipped("needs %s, which failed", n)
		case CheckSkip:
			return skipped("needs %s, which was skipped", n)
		}
	}
	t := c.timeout
	if t == 0 {
		t = checkTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	r := c.run(cctx, d)
	if r.Status == CheckFail && cctx.Err() != nil && ctx.Err() == nil && !errors.Is(cctx.Err(), context.Canceled) {
		r.Found += fmt.Sprintf(" (the check ran out of its %s)", t)
	}
	return r
}

func ok(format string, a ...any) CheckResult {
	return CheckResult{Status: CheckOK, Found: fmt.Sprintf(format, a...)}
}

func failed(hint, format string, a ...any) CheckResult {
	return CheckResult{Status: CheckFail, Found: fmt.Sprintf(format, a...), Hint: hint}
}

func warned(hint, format string, a ...any) CheckResult {
	return CheckResult{Status: CheckWarn, Found: fmt.Sprintf(format, a...), Hint: hint}
}

func skipped(format string, a ...any) CheckResult {
	return CheckResult{Status: CheckSkip, Found: fmt.Sprintf(format, a...)}
}
