package steps

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/vm2mesh/vm2mesh/remote"
	"github.com/vm2mesh/vm2mesh/vmconfig"
)

// VMPreflight checks the VM before anything on it changes: its package manager
// and architecture against the package, systemd, free space, root, and that the
// east-west gateway's istiod port answers from the VM.
type VMPreflight struct{}

func (VMPreflight) Name() string  { return "vm-preflight" }
func (VMPreflight) Title() string { return "Check the VM" }

// minFreeKB is room for the package and its unpacked files.
const minFreeKB = 300 * 1024

func (VMPreflight) Check(ctx context.Context, env *Env) (Status, error) {
	return Status{Reason: "read-only checks, every run"}, nil
}

// gatewayFromHosts reads the address the generated hosts file gives istiod. Both
// reach root's shell on the VM: the address must parse as an IP and the name as
// a DNS name, whoever wrote the file.
func gatewayFromHosts(env *Env) (ip, name string, err error) {
	b, err := os.ReadFile(env.File("hosts"))
	if err != nil {
		return "", "", fmt.Errorf("the VM's files are not in %s (%v): run the cluster half first (vm2mesh apply --only cluster)", env.WorkDir, err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return "", "", WithHint(fmt.Errorf("%s is empty: the cluster half found no gateway address", env.File("hosts")),
			"set gatewayAddress in the answers file and run the cluster half again")
	}
	addr, err := netip.ParseAddr(f[0])
	if err != nil || addr.Zone() != "" {
		return "", "", WithHint(fmt.Errorf("%s: %q is not an IP address", env.File("hosts"), f[0]),
			"the file is made by the cluster half: run vm2mesh apply --only cluster again (or set gatewayAddress)")
	}
	if len(f) != 2 || len(validation.IsDNS1123Subdomain(f[1])) > 0 {
		return "", "", WithHint(fmt.Errorf("%s: expected one line \"<gateway IP> <istiod's name>\", not %q", env.File("hosts"), strings.TrimSpace(string(b))),
			"the file is made by the cluster half: run vm2mesh apply --only cluster again")
	}
	return addr.String(), f[1], nil
}

// CheckVMFiles checks the five files in the work directory before any goes to
// the VM: there, regular files, and what reaches root's shell parses (the hosts
// line, cluster.env). They may have been edited since vm2mesh wrote them.
func CheckVMFiles(env *Env) error {
	for _, name := range vmconfig.FileNames {
		fi, err := os.Lstat(env.File(name))
		if err != nil {
			return WithHint(fmt.Errorf("%s is missing", env.File(name)), "run the cluster half first: vm2mesh apply --only cluster")
		}
		if !fi.Mode().IsRegular() {
			return WithHint(fmt.Errorf("%s is not a regular file (%s)", env.File(name), fi.Mode().Type()), "remove it and run the cluster half again: vm2mesh apply --only cluster")
		}
	}
	if _, _, err := gatewayFromHosts(env); err != nil {
		return err
	}
	data, err := os.ReadFile(env.File("cluster.env"))
	if err != nil {
		return err
	}
	if err := vmconfig.CheckClusterEnv(data); err != nil {
		return WithHint(fmt.Errorf("%s: %w", env.File("cluster.env"), err), "run the cluster half again to write it afresh: vm2mesh apply --only cluster")
	}
	return nil
}

// reachScript opens a TCP connection to the gateway's 15012 from the VM. Where
// the sidecar is installed it runs as istio-proxy: once the agent has started,
// istio-iptables sends every other user's connections to Envoy's outbound port,
// and the probe would test Envoy, not the path the agent itself takes.
func reachScript(ip string) string {
	probe := fmt.Sprintf("timeout 5 bash -c %s 2>/dev/null || timeout 5 nc -z %s 15012",
		remote.Quote("exec 3<>/dev/tcp/"+ip+"/15012"), remote.Quote(ip))
	return fmt.Sprintf("%s\nif id %[2]s >/dev/null 2>&1; then as_user sh -c %[3]s; else sh -c %[3]s; fi",
		remote.AsUserFunc(agentUser), agentUser, remote.Quote(probe))
}

func (VMPreflight) Plan(env *Env) ([]Action, error) {
	ip, _, _ := gatewayFromHosts(env)
	if ip == "" {
		ip = "GATEWAY_IP"
	}
	var acts []Action
	if env.VM != nil {
		acts = append(acts, Action{Kind: Note, Title: "how vm2mesh reaches the VM (ssh_config as ssh applies it)", Body: env.VM.Route.String()})
	}
	return append(acts, []Action{
		{Kind: Command, Title: "what the VM is", Argv: []string{"sh", "-c", factsScript}},
		{Kind: Command, Title: "istiod reachable through the gateway", Argv: []string{"sh", "-c", reachScript(ip)}},
	}...), nil
}

func (VMPreflight) Run(ctx context.Context, env *Env, out *Output) error {
	if err := env.vmReady(); err != nil {
		return err
	}
	if err := CheckVMFiles(env); err != nil {
		return err
	}
	for _, d := range env.VM.Cleaned() {
		out.Warnf("removed %s on the VM: an earlier run's upload directory, left when its connection was cut (it may have held the package and istio-token)", d)
	}
	f := env.Facts
	out.Logf("%s, %s, %s, root: %s", f.OS, f.Family, f.Arch, f.Root)
	if f.Family == "" {
		return WithHint(fmt.Errorf("the VM has neither dpkg nor rpm"), "Istio's sidecar comes as .deb or .rpm: use a Debian/Ubuntu or RHEL-family VM")
	}
	if f.Arch != "amd64" && f.Arch != "arm64" {
		return fmt.Errorf("the VM is %s: Istio publishes sidecar packages for amd64 and arm64 only", f.Arch)
	}
	if pkg := env.Settings.VM.Package; pkg != "" {
		if !strings.HasSuffix(pkg, "."+f.Family) {
			return WithHint(fmt.Errorf("vm.package %s does not fit the VM, which installs .%s packages (%s)", pkg, f.Family, f.OS),
				"give %s for this VM", f.PackageName())
		}
		if f.Arch == "arm64" && !strings.Contains(pkg, "arm64") {
			out.Warnf("the VM is arm64 but vm.package is not named for arm64: Istio publishes %s", f.PackageName())
		}
	}
	if f.FreeKB > 0 && f.FreeKB < minFreeKB {
		return fmt.Errorf("only %d MiB free under /var/lib on the VM; the sidecar needs about %d MiB", f.FreeKB/1024, minFreeKB/1024)
	}
	if !f.Systemd {
		out.Warnf("systemd is not PID 1 on the VM: the agent will be started directly and will not restart at boot")
	}
	ip, _, err := gatewayFromHosts(env)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := env.VM.Exec(cctx, remote.Cmd{Line: reachScript(ip), Root: true}); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return WithHint(fmt.Errorf("the VM cannot reach the east-west gateway at %s:15012", ip),
			"the agent reaches istiod there: check the gateway address, routes and firewalls between the VM and the gateway")
	}
	out.Summary("%s (%s, %s), root: %s, gateway %s:15012 reachable", f.OS, f.Family, f.Arch, f.Root, ip)
	return nil
}
