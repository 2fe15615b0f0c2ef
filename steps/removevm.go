package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/vm2mesh/vm2mesh/remote"
	"github.com/vm2mesh/vm2mesh/vmconfig"
)

// The VM half of remove, in the reverse order of apply: stop the agent, let
// Istio clean its iptables rules, remove the files vm2mesh placed (as
// istio-proxy, while it still exists), the package, the /etc/hosts line, and
// last vm2mesh's own directory, whose marker says the package was vm2mesh's.
// Each step skips what is already gone, so a cut-off remove resumes.

// RemoveAgent stops the agent and keeps it from starting at boot.
type RemoveAgent struct{}

func (RemoveAgent) Name() string  { return "vm-stop-agent" }
func (RemoveAgent) Title() string { return "Stop the Istio agent" }

func (RemoveAgent) Check(ctx context.Context, env *Env) (Status, error) {
	if err := env.vmReady(); err != nil {
		return Status{}, err
	}
	line := "pgrep -f '" + agentPattern + "' >/dev/null"
	if env.Facts.Systemd {
		line = "systemctl is-active --quiet istio || systemctl is-enabled --quiet istio 2>/dev/null"
	}
	if _, err := env.VM.RunRoot(ctx, line); err != nil {
		return Status{Skip: true, Reason: "the agent is not running"}, nil
	}
	return Status{Reason: "the agent runs"}, nil
}

func stopScript(env *Env) string {
	if env.Facts.Systemd {
		return "systemctl disable --now istio"
	}
	return stopDetachedScript + "; true"
}

func (RemoveAgent) Plan(env *Env) ([]Action, error) {
	return []Action{{Kind: Command, Title: "stop the agent as root", Argv: []string{"sh", "-c", stopScript(env)}}}, nil
}

func (RemoveAgent) Run(ctx context.Context, env *Env, out *Output) error {
	if _, err := env.VM.RunRoot(ctx, stopScript(env)); err != nil {
		return WithHint(err, "stop it by hand (systemctl disable --now istio, or kill istio-start.sh and pilot-agent) and run remove again")
	}
	out.Summary("stopped")
	return nil
}

// RemoveIptables removes the agent's iptables rules as Istio's `istio-start.sh
// clean` does, but by calling pilot-agent directly: istio-start.sh would source
// cluster.env, istio-proxy's file, as root. istio-iptables deletes the rules its
// configuration makes (inbound capture, DNS capture come from cluster.env), so
// it runs with the variables of the agent's cluster.env and sidecar.env, each
// line checked to be plain text first; what it leaves is swept up after.
type RemoveIptables struct{}

func (RemoveIptables) Name() string  { return "vm-clean-iptables" }
func (RemoveIptables) Title() string { return "Remove the agent's iptables rules" }

// istioChains prints the ISTIO_ chains of IPv4 and IPv6, where the tools exist.
// Every backend: istio-iptables uses legacy where legacy already has rules, nft
// otherwise, whatever the default iptables is.
const istioChains = `for s in iptables-legacy-save iptables-nft-save iptables-save ip6tables-legacy-save ip6tables-nft-save ip6tables-save; do command -v $s >/dev/null 2>&1 && $s 2>/dev/null; done | grep '^:ISTIO_' | cut -d' ' -f1 | sort -u`

const cleanIptables = "/usr/local/bin/pilot-agent istio-iptables --cleanup-only"

// agentEnvFiles are what istio-start.sh sources before it runs istio-iptables.
var agentEnvFiles = []string{"/var/lib/istio/envoy/sidecar.env", "/var/lib/istio/envoy/cluster.env"}

// sweepIptables deletes, in every backend and table, the jumps into ISTIO_
// chains and then the chains: iptables-restore reads the rules as
// iptables-save wrote them, so nothing of them reaches a shell.
const sweepIptables = `for b in iptables-legacy iptables-nft ip6tables-legacy ip6tables-nft iptables ip6tables; do
	command -v $b-save >/dev/null 2>&1 || continue
	for t in nat mangle raw filter; do
		r=$($b-save -t $t 2>/dev/null | awk -v t=$t '
			/^:ISTIO_/ { c[++n] = substr($1, 2) }
			/^-A / && $2 !~ /^ISTIO_/ && / -j ISTIO_/ { sub(/^-A /, "-D "); d[++m] = $0 }
			END { if (n + m == 0) exit; print "*" t; for (i = 1; i <= m; i++) print d[i]; for (i = 1; i <= n; i++) print "-F " c[i]; for (i = 1; i <= n; i++) print "-X " c[i]; print "COMMIT" }')
		[ -z "$r" ] || printf '%s\n' "$r" | $b-restore --noflush
	done
done`

func (RemoveIptables) Check(ctx context.Context, env *Env) (Status, error) {
	if err := env.vmReady(); err != nil {
		return Status{}, err
	}
	chains, err := env.VM.RunRoot(ctx, istioChains+"; true")
	if err != nil {
		return Status{}, err
	}
	if strings.TrimSpace(chains) == "" {
		return Status{Skip: true, Reason: "no ISTIO_ iptables chains"}, nil
	}
	return Status{Reason: "iptables has " + strings.Join(strings.Fields(chains), " ")}, nil
}

func (RemoveIptables) Plan(env *Env) ([]Action, error) {
	return []Action{
		{Kind: Command, Title: "as root, what istio-start.sh clean runs, with istio-iptables' variables (ISTIO_*, ENVOY_PORT, PROXY_UID, ...) from " + strings.Join(agentEnvFiles, " and ") + " (read as istio-proxy, each line checked; other names are not passed)",
			Argv: append([]string{"env", "KEY=value..."}, strings.Fields(cleanIptables)...)},
		{Kind: Command, Title: "as root, if ISTIO_ chains remain: delete the jumps into them and the chains, in every backend", Argv: []string{"sh", "-c", sweepIptables}},
	}, nil
}

// iptablesVars are the variables istio-iptables reads besides ISTIO_*
// (its flags' names as BindEnv turns them into variables, and the extra names
// it accepts), minus those that point it elsewhere (another binary, network
// namespace or mode). Only these reach root's command: a PATH or LD_PRELOAD
// line in istio-proxy's file would otherwise choose what root runs.
var iptablesVars = map[string]bool{
	"ENVOY_PORT": true, "INBOUND_CAPTURE_PORT": true, "INBOUND_TUNNEL_PORT": true, "PROXY_UID": true, "PROXY_GID": true,
	"KUBE_VIRT_INTERFACES": true, "REDIRECT_DNS": true, "DROP_INVALID": true, "INVALID_DROP": true, "DUAL_STACK": true,
	"CAPTURE_ALL_DNS": true, "NATIVE_NFTABLES": true,
}

func iptablesVar(name string) bool { return strings.HasPrefix(name, "ISTIO_") || iptablesVars[name] }

// agentEnv is the KEY=value lines istio-start.sh would load that istio-iptables
// reads, as shell words: each file read as istio-proxy, each line checked to be
// a variable name and plain text (vmconfig.CheckClusterEnv), so the words are
// safe to pass as is, and only iptablesVar names kept; ignored names the rest.
func agentEnv(ctx context.Context, env *Env) (words, ignored []string, err error) {
	for _, f := range agentEnvFiles {
		data, err := env.asAgent(ctx, "if [ -f "+f+" ]; then cat "+f+"; fi")
		if err != nil {
			return nil, nil, err
		}
		if err := vmconfig.CheckClusterEnv([]byte(data)); err != nil {
			return nil, nil, WithHint(fmt.Errorf("%s on the VM: %w", f, err), "the file is not as vm2mesh or the package wrote it: fix or remove that line, then run remove again")
		}
		for _, l := range strings.Split(data, "\n") {
			if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			if name, _, _ := strings.Cut(l, "="); iptablesVar(name) {
				words = append(words, l)
			} else {
				ignored = append(ignored, name)
			}
		}
	}
	return words, ignored, nil
}

func (RemoveIptables) Run(ctx context.Context, env *Env, out *Output) error {
	vars, ignored, err := agentEnv(ctx, env)
	if err != nil && !noAgentUser(err) {
		return err
	}
	if len(ignored) > 0 {
		out.Logf("not passed to istio-iptables (not its variables): %s", strings.Join(ignored, ", "))
	}
	line := cleanIptables
	if len(vars) > 0 {
		line = "env " + strings.Join(vars, " ") + " " + cleanIptables
	}
	if _, err := env.VM.RunRoot(ctx, line); err != nil {
		return WithHint(err, "pilot-agent comes with the sidecar package: if it is gone, remove the ISTIO_ chains with iptables -t nat -F/-X (and mangle) by hand")
	}
	left, err := env.VM.RunRoot(ctx, istioChains+"; true")
	if err != nil {
		return err
	}
	if left = strings.Join(strings.Fields(left), " "); left == "" {
		out.Summary("ISTIO_ chains removed by istio-iptables --cleanup-only")
		return nil
	}
	out.Logf("istio-iptables --cleanup-only left %s: deleting them and the jumps into them", left)
	if _, err := env.VM.RunRoot(ctx, sweepIptables); err != nil {
		return err
	}
	if still, err := env.VM.RunRoot(ctx, istioChains+"; true"); err != nil {
		return err
	} else if still = strings.Join(strings.Fields(still), " "); still != "" {
		return WithHint(fmt.Errorf("ISTIO_ chains remain: %s", still), "another rule may still jump into them: look with iptables-save and delete them by hand")
	}
	out.Summary("ISTIO_ chains removed (istio-iptables --cleanup-only left %s; deleted with the jumps into them)", left)
	return nil
}

// removedFiles are what vm2mesh placed, the certificate and key the agent got
// with them (the identity of a workload that is leaving), and what the agent
// writes at each start: its bootstraps and sockets.
func removedFiles() []string {
	var files []string
	for _, p := range placement {
		files = append(files, p.target)
	}
	return append(files, agentCertPath, agentKeyPath,
		"/var/lib/istio/proxy/grpc-bootstrap.json", "/var/lib/istio/proxy/envoy-rev.json",
		"/var/run/secrets/workload-spiffe-uds/socket", "/var/run/secrets/credential-uds/socket")
}

// agentDirs are the directories in istio-proxy's /var/run/secrets that
// vm-place-files or the agent made: removed when empty.
var agentDirs = []string{"/var/run/secrets/tokens", "/var/run/secrets/workload-spiffe-uds", "/var/run/secrets/credential-uds"}

// RemoveVMFiles removes the files, as istio-proxy: they lie in its directories,
// where any name can be a link it planted. rm does not follow a link it
// removes, and as istio-proxy a link in the path leads nowhere it could not go.
type RemoveVMFiles struct{}

func (RemoveVMFiles) Name() string  { return "vm-remove-files" }
func (RemoveVMFiles) Title() string { return "Remove the files vm2mesh placed" }

// presentFiles lists, as istio-proxy, which of the files and directories are
// there.
func presentFiles(ctx context.Context, env *Env) ([]string, error) {
	var line strings.Builder
	for _, f := range append(removedFiles(), agentDirs...) {
		fmt.Fprintf(&line, "if [ -e %[1]s ] || [ -L %[1]s ]; then echo %[1]s; fi\n", f)
	}
	have, err := env.asAgent(ctx, line.String())
	return strings.Fields(have), err
}

func (RemoveVMFiles) Check(ctx context.Context, env *Env) (Status, error) {
	if err := env.vmReady(); err != nil {
		return Status{}, err
	}
	have, err := presentFiles(ctx, env)
	if noAgentUser(err) {
		// Root does not remove by name where istio-proxy's directories were: a
		// link there could lead it anywhere.
		return Status{Skip: true, Reason: "the VM has no istio-proxy (the package is gone): anything left in its former directories (/etc/certs, /var/run/secrets/tokens, /var/lib/istio, /etc/istio) is not removed as root; look and remove it by hand"}, nil
	}
	if err != nil {
		return Status{}, err
	}
	if len(have) == 0 {
		return Status{Skip: true, Reason: "none of the files is there"}, nil
	}
	return Status{Reason: strings.Join(have, ", ") + " to remove"}, nil
}

// removeFilesScript: the files as istio-proxy; then the directories vm2mesh or
// the agent may have made, only when empty: rmdir never follows a link and
// never removes anything else. Where root owns the parent, root does it.
func removeFilesScript() string {
	var b strings.Builder
	b.WriteString(remote.AsUserFunc(agentUser) + "\nas_user rm -f --")
	for _, f := range removedFiles() {
		b.WriteString(" " + f)
	}
	b.WriteString("\nas_user rmdir " + strings.Join(agentDirs, " ") + " 2>/dev/null\nrmdir /var/run/secrets /etc/certs 2>/dev/null\ntrue")
	return b.String()
}

func (RemoveVMFiles) Plan(env *Env) ([]Action, error) {
	return []Action{{Kind: Command, Title: "as root, the files as istio-proxy", Argv: []string{"sh", "-c", removeFilesScript()}}}, nil
}

func (RemoveVMFiles) Run(ctx context.Context, env *Env, out *Output) error {
	have, err := presentFiles(ctx, env)
	if err != nil {
		return err
	}
	if _, err := env.VM.RunRoot(ctx, removeFilesScript()); err != nil {
		return err
	}
	out.Summary("removed %s", strings.Join(have, ", "))
	return nil
}

// RemovePackage removes istio-sidecar when vm2mesh installed it (its marker in
// vmStateDir says so); one the operator installed is theirs to remove.
type RemovePackage struct{}

func (RemovePackage) Name() string  { return "vm-remove-package" }
func (RemovePackage) Title() string { return "Remove the sidecar package" }

func removeCommand(env *Env) string {
	if env.Facts.Family == "rpm" {
		return "rpm -e istio-sidecar"
	}
	return "dpkg -r istio-sidecar"
}

func (RemovePackage) Check(ctx context.Context, env *Env) (Status, error) {
	if err := env.vmReady(); err != nil {
		return Status{}, err
	}
	have, err := env.VM.RunRoot(ctx, fmt.Sprintf("%s >/dev/null 2>&1 && echo installed; [ -f %s ] && echo marked; true", installedQuery(env), packageMarker))
	if err != nil {
		return Status{}, err
	}
	switch {
	case !strings.Contains(have, "installed"):
		return Status{Skip: true, Reason: "istio-sidecar is not installed"}, nil
	case !strings.Contains(have, "marked"):
		return Status{Skip: true, Reason: fmt.Sprintf("istio-sidecar was not installed by vm2mesh (no %s): left in place; `%s` removes it", packageMarker, removeCommand(env))}, nil
	}
	return Status{Reason: "istio-sidecar is installed"}, nil
}

func (RemovePackage) Plan(env *Env) ([]Action, error) {
	return []Action{{Kind: Command, Title: "remove as root", Argv: strings.Fields(removeCommand(env))}}, nil
}

func (RemovePackage) Run(ctx context.Context, env *Env, out *Output) error {
	res, err := env.VM.RunRoot(ctx, removeCommand(env)+" 2>&1")
	for _, l := range strings.Split(strings.TrimSpace(res), "\n") {
		if l != "" {
			out.Logf("%s", l)
		}
	}
	if err != nil {
		return WithHint(err, "the package manager refused: read its output above")
	}
	out.Summary("removed istio-sidecar (kept, as the package leaves them: the istio-proxy user, and the agent's logs in /var/log/istio)")
	return nil
}

// RemoveHostsLine drops the line vm2mesh manages from /etc/hosts and keeps every
// other line byte for byte; /etc/hosts.vm2mesh.orig stays as the record of what
// the file was before the first apply.
type RemoveHostsLine struct{}

func (RemoveHostsLine) Name() string  { return "vm-remove-hosts-line" }
func (RemoveHostsLine) Title() string { return "Remove vm2mesh's line from /etc/hosts" }

// managedLine is the awk test for vm2mesh's line: it ends with the mark.
const managedLine = `substr($0, length($0) - length(mark) + 1) == mark`

func (RemoveHostsLine) Check(ctx context.Context, env *Env) (Status, error) {
	if err := env.vmReady(); err != nil {
		return Status{}, err
	}
	have, err := env.VM.RunRoot(ctx, fmt.Sprintf("awk -v mark=%s '%s' /etc/hosts", remote.Quote(hostsMark), managedLine))
	if err != nil {
		return Status{}, err
	}
	if strings.TrimSpace(have) == "" {
		return Status{Skip: true, Reason: "/etc/hosts has no line of vm2mesh's"}, nil
	}
	return Status{Reason: "/etc/hosts has " + strings.TrimSpace(have)}, nil
}

// unhostsScript writes /etc/hosts without the managed line as hostsScript
// writes it: a new file renamed over it, in place where it is a mount point.
func unhostsScript() string {
	return fmt.Sprintf(`set -e
H=/etc/hosts
tmp=$(mktemp "$H.vm2mesh.XXXXXX")
awk -v mark=%s '!(%s)' "$H" > "$tmp"
chmod --reference="$H" "$tmp"; chown --reference="$H" "$tmp"
mv -f "$tmp" "$H" 2>/dev/null || { cat "$tmp" > "$H"; rm -f "$tmp"; }`, remote.Quote(hostsMark), managedLine)
}

func (RemoveHostsLine) Plan(env *Env) ([]Action, error) {
	return []Action{{Kind: Command, Title: "as root", Argv: []string{"sh", "-c", unhostsScript()}}}, nil
}

func (RemoveHostsLine) Run(ctx context.Context, env *Env, out *Output) error {
	if _, err := env.VM.RunRoot(ctx, unhostsScript()); err != nil {
		return err
	}
	out.Summary("removed; /etc/hosts.vm2mesh.orig (the file before vm2mesh first changed it) is kept")
	return nil
}

// RemoveVMState removes vm2mesh's own directory: the package marker and the
// files vm-place-files replaced. Root's, so root removes it, after checking it
// is still root's directory and not a link.
type RemoveVMState struct{}

func (RemoveVMState) Name() string  { return "vm-remove-state" }
func (RemoveVMState) Title() string { return "Remove " + vmStateDir }

func (RemoveVMState) Check(ctx context.Context, env *Env) (Status, error) {
	if err := env.vmReady(); err != nil {
		return Status{}, err
	}
	have, err := env.VM.RunRoot(ctx, fmt.Sprintf("if [ -e %[1]s ] || [ -L %[1]s ]; then echo there; fi", vmStateDir))
	if err != nil {
		return Status{}, err
	}
	if strings.TrimSpace(have) == "" {
		return Status{Skip: true, Reason: vmStateDir + " is gone"}, nil
	}
	return Status{Reason: vmStateDir + " holds the package marker and the replaced files"}, nil
}

// removeStateScript removes vmStateDir; first, when its marker says vm2mesh
// installed the package and the package is gone, what the package's postinst
// made outside the package's own files and nobody filled since: the empty
// directories under /var/lib/istio and the /etc/istio link to it. (The
// istio-proxy user and /var/log/istio, the agent's logs, stay.) Here last,
// because the marker goes with vmStateDir: a cut-off remove resumes here.
func removeStateScript(env *Env) string {
	return fmt.Sprintf(`S=%[1]s
if [ -L "$S" ] || [ ! -d "$S" ] || [ "$(stat -c %%u "$S")" != 0 ]; then echo "$S is not root's directory: left alone, look at it" >&2; exit 1; fi
if [ -f "$S/package" ] && ! %[2]s >/dev/null 2>&1 && [ -d /var/lib/istio ] && [ ! -L /var/lib/istio ]; then
	rmdir /var/lib/istio/config /var/lib/istio/proxy /var/lib/istio/envoy /var/lib/istio 2>/dev/null
	if [ -L /etc/istio ] && [ "$(readlink /etc/istio)" = /var/lib/istio ] && [ ! -e /var/lib/istio ]; then rm -f /etc/istio; fi
fi
rm -rf -- "$S"`, vmStateDir, installedQuery(env))
}

func (RemoveVMState) Plan(env *Env) ([]Action, error) {
	return []Action{{Kind: Command, Title: "as root", Argv: []string{"sh", "-c", removeStateScript(env)}}}, nil
}

func (RemoveVMState) Run(ctx context.Context, env *Env, out *Output) error {
	if _, err := env.VM.RunRoot(ctx, removeStateScript(env)); err != nil {
		return err
	}
	out.Summary("removed")
	return nil
}
