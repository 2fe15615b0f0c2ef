package steps

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/vm2mesh/vm2mesh/remote"
)

// hostsMark ends the one /etc/hosts line vm2mesh manages.
const hostsMark = "# managed by vm2mesh"

// placement is where each generated file goes on the VM, and its mode.
var placement = []struct{ file, target, mode string }{
	{"root-cert.pem", "/etc/certs/root-cert.pem", "0644"},
	{"istio-token", "/var/run/secrets/tokens/istio-token", "0600"},
	{"cluster.env", "/var/lib/istio/envoy/cluster.env", "0644"},
	{"mesh.yaml", "/etc/istio/config/mesh", "0644"},
}

// VMPlaceFiles puts the files where the agent reads them, gives istiod's name one
// managed line in /etc/hosts and hands the agent's directories to istio-proxy.
type VMPlaceFiles struct{}

func (VMPlaceFiles) Name() string  { return "vm-place-files" }
func (VMPlaceFiles) Title() string { return "Place the files on the VM" }

// hostsLineScript prints the lines of /etc/hosts that name name (before comments).
func hostsLineScript(name string) string {
	return fmt.Sprintf(`awk -v name=%s '{ for (i = 2; i <= NF; i++) { if ($i ~ /^#/) break; if ($i == name) { print; break } } }' /etc/hosts`, remote.Quote(name))
}

// hostsScript keeps every other line of /etc/hosts as it is, drops istiod's name
// from older lines (reporting them), adds the managed line, and backs up the
// original once. The file is replaced by rename, or rewritten in place where it
// is a mount point.
func hostsScript(ip, name string) string {
	return fmt.Sprintf(`H=/etc/hosts
[ -e "$H.vm2mesh.orig" ] || cp -p "$H" "$H.vm2mesh.orig"
tmp=$(mktemp "$H.vm2mesh.XXXXXX")
awk -v name=%[2]s -v mark=%[3]s '
NF < 2 || $1 ~ /^#/ { print; next }
{
	hit = 0; rest = $1; kept = 0
	for (i = 2; i <= NF; i++) {
		if ($i ~ /^#/) break
		if ($i == name) hit = 1; else { rest = rest " " $i; kept++ }
	}
	if (!hit) { print; next }
	if (index($0, mark) == 0) print "replaced: " $0 > "/dev/stderr"
	if (kept > 0) print rest
}' "$H" > "$tmp"
printf '%%s %%s %%s\n' %[1]s %[2]s %[3]s >> "$tmp"
chmod --reference="$H" "$tmp"; chown --reference="$H" "$tmp"
mv -f "$tmp" "$H" 2>/dev/null || { cat "$tmp" > "$H"; rm -f "$tmp"; }`, remote.Quote(ip), remote.Quote(name), remote.Quote(hostsMark))
}

func (VMPlaceFiles) Check(ctx context.Context, env *Env) (Status, error) {
	if err := env.vmReady(); err != nil {
		return Status{}, err
	}
	ip, name, err := gatewayFromHosts(env)
	if err != nil {
		return Status{}, err
	}
	var script strings.Builder
	for _, p := range placement {
		if p.file == "root-cert.pem" {
			// Public, small, and compared by its certificates (below).
			fmt.Fprintf(&script, "base64 -w0 %s 2>/dev/null; echo\n", p.target)
			continue
		}
		fmt.Fprintf(&script, "sha256sum %s 2>/dev/null || echo missing\n", p.target)
	}
	script.WriteString("stat -c '%U %a' /var/run/secrets/tokens/istio-token 2>/dev/null || echo missing\n")
	script.WriteString(hostsLineScript(name))
	out, err := env.VM.RunRoot(ctx, script.String())
	if err != nil {
		return Status{}, err
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < len(placement)+1 {
		return Status{Reason: "the files are not in place"}, nil
	}
	for i, p := range placement {
		if p.file == "root-cert.pem" {
			local, err := os.ReadFile(env.File(p.file))
			if err != nil {
				return Status{}, err
			}
			have, _ := base64.StdEncoding.DecodeString(lines[i])
			if !sameCertificates(local, have) {
				return Status{Reason: p.target + " is missing or holds other certificates"}, nil
			}
			continue
		}
		sum, _, err := remote.FileSHA256(env.File(p.file))
		if err != nil {
			return Status{}, err
		}
		if have, _, _ := strings.Cut(lines[i], " "); have != sum {
			return Status{Reason: p.target + " is missing or differs"}, nil
		}
	}
	if lines[len(placement)] != "istio-proxy 600" {
		return Status{Reason: "the token is not istio-proxy's with mode 600"}, nil
	}
	want := fmt.Sprintf("%s %s %s", ip, name, hostsMark)
	if hosts := lines[len(placement)+1:]; len(hosts) != 1 || hosts[0] != want {
		return Status{Reason: "/etc/hosts does not have exactly the managed line for " + name}, nil
	}
	if stale, why, err := staleAgentCert(ctx, env); err != nil {
		return Status{}, err
	} else if stale {
		return Status{Reason: agentCertPath + " " + why + ": the agent would use it instead of the token"}, nil
	}
	return Status{Skip: true, Reason: "the files and the /etc/hosts entry are in place"}, nil
}

func placeScript(tmp, ip, name string) string {
	var b strings.Builder
	b.WriteString("set -e\ninstall -d -m 0755 /etc/certs /var/run/secrets/tokens /var/lib/istio/envoy /etc/istio/config /etc/istio/proxy\n")
	for _, p := range placement {
		src := path.Join(tmp, p.file)
		if p.file != "istio-token" {
			// What is replaced is kept (the token, expired or not, is not worth keeping).
			fmt.Fprintf(&b, "if [ -f %[1]s ] && ! cmp -s %[2]s %[1]s; then cp -p %[1]s %[1]s.vm2mesh-prev; fi\n", p.target, src)
		}
		fmt.Fprintf(&b, "install -m %s %s %s\n", p.mode, src, p.target)
	}
	b.WriteString(hostsScript(ip, name) + "\n")
	b.WriteString("chown -R istio-proxy /var/lib/istio /etc/certs /etc/istio/proxy /etc/istio/config /var/run/secrets /etc/certs/root-cert.pem\n")
	return b.String()
}

func (VMPlaceFiles) Plan(env *Env) ([]Action, error) {
	ip, name, err := gatewayFromHosts(env)
	if err != nil {
		ip, name = "GATEWAY_IP", "istiod.istio-system.svc"
	}
	return []Action{
		{Kind: Note, Title: "upload", Body: "upload cluster.env, mesh.yaml, root-cert.pem, istio-token, hosts to $TMP on the VM (a private temp dir), each checked by SHA-256"},
		{Kind: Command, Title: "place them as root", Argv: []string{"sh", "-c", placeScript("$TMP", ip, name)}},
	}, nil
}

func (VMPlaceFiles) Run(ctx context.Context, env *Env, out *Output) error {
	ip, name, err := gatewayFromHosts(env)
	if err != nil {
		return err
	}
	tmp, err := env.vmTempDir(ctx)
	if err != nil {
		return err
	}
	for _, p := range placement {
		if err := env.VM.Upload(ctx, env.File(p.file), path.Join(tmp, p.file), nil); err != nil {
			return err
		}
	}
	stale, why, err := staleAgentCert(ctx, env)
	if err != nil {
		return err
	}
	if stale {
		// Moved, not removed: it is the VM's only copy.
		if _, err := env.VM.RunRoot(ctx, fmt.Sprintf("for f in %s %s; do [ ! -e \"$f\" ] || mv -f \"$f\" \"$f.vm2mesh-prev\"; done", agentCertPath, agentKeyPath)); err != nil {
			return err
		}
		out.Warnf("%s %s: moved it and its key aside (.vm2mesh-prev), so the agent asks for a new one with the token", agentCertPath, why)
	}
	var stderr strings.Builder
	cleanup := fmt.Sprintf("\nrc=$?; rm -f %s/*; exit $rc", tmp)
	_, err = env.VM.Exec(ctx, remote.Cmd{Line: "(" + placeScript(tmp, ip, name) + ")" + cleanup, Root: true, Stderr: &stderr,
		Display: "placing the files and the /etc/hosts entry"})
	for _, l := range strings.Split(stderr.String(), "\n") {
		if r, ok := strings.CutPrefix(l, "replaced: "); ok {
			out.Warnf("/etc/hosts: replaced an older line for %s: %q (the original is kept as /etc/hosts.vm2mesh.orig)", name, r)
		}
	}
	if err != nil {
		return WithHint(err, "the sidecar package must be installed first: it creates istio-proxy and /etc/istio")
	}
	env.vmChanged = true
	out.Summary("files in place, /etc/hosts: %s %s", ip, name)
	return nil
}
