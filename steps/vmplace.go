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

// hostsMatch is the awk test for a field that names istiod: resolvers compare
// names in any letter case, and a file edited on Windows ends its lines in \r.
const hostsMatch = `function names(f) { sub(/\r$/, "", f); return tolower(f) == tolower(name) }`

// hostsLineScript prints the lines of /etc/hosts that name name (before comments).
func hostsLineScript(name string) string {
	return fmt.Sprintf(`awk -v name=%s '%s { for (i = 2; i <= NF; i++) { if ($i ~ /^#/) break; if (names($i)) { print; break } } }' /etc/hosts`, remote.Quote(name), hostsMatch)
}

// hostsScript keeps every other line of /etc/hosts byte for byte, drops istiod's
// name from older lines (reporting them), adds the managed line, and backs up
// the original once. The file is replaced by rename, or rewritten in place where
// it is a mount point.
func hostsScript(ip, name string) string {
	return fmt.Sprintf(`H=/etc/hosts
[ -e "$H.vm2mesh.orig" ] || cp -p "$H" "$H.vm2mesh.orig"
tmp=$(mktemp "$H.vm2mesh.XXXXXX")
awk -v name=%[2]s -v mark=%[3]s '%[4]s
NF < 2 || $1 ~ /^#/ { print; next }
{
	hit = 0; rest = $1; kept = 0
	for (i = 2; i <= NF; i++) {
		if ($i ~ /^#/) break
		if (names($i)) hit = 1; else { rest = rest " " $i; kept++ }
	}
	if (!hit) { print; next }
	if (index($0, mark) == 0) print "replaced: " $0 > "/dev/stderr"
	if (kept > 0) { sub(/\r$/, "", rest); print rest ($0 ~ /\r$/ ? "\r" : "") }
}' "$H" > "$tmp"
printf '%%s %%s %%s\n' %[1]s %[2]s %[3]s >> "$tmp"
chmod --reference="$H" "$tmp"; chown --reference="$H" "$tmp"
mv -f "$tmp" "$H" 2>/dev/null || { cat "$tmp" > "$H"; rm -f "$tmp"; }`, remote.Quote(ip), remote.Quote(name), remote.Quote(hostsMark), hostsMatch)
}

func (VMPlaceFiles) Check(ctx context.Context, env *Env) (Status, error) {
	if err := env.vmReady(); err != nil {
		return Status{}, err
	}
	ip, name, err := gatewayFromHosts(env)
	if err != nil {
		return Status{}, err
	}
	// The agent's files are read as the agent (nothing there to read before the
	// package made it); /etc/hosts is root's.
	var script strings.Builder
	script.WriteString(remote.AsUserFunc(agentUser) + "\n")
	for _, p := range placement {
		if p.file == "root-cert.pem" {
			// Public, small, and compared by its certificates (below).
			fmt.Fprintf(&script, "as_user base64 -w0 %s 2>/dev/null; echo\n", p.target)
			continue
		}
		fmt.Fprintf(&script, "as_user sha256sum %s 2>/dev/null || echo missing\n", p.target)
	}
	script.WriteString("as_user stat -c '%U %a' /var/run/secrets/tokens/istio-token 2>/dev/null || echo missing\n")
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

// placeScript puts the files from tmp (the connection's private directory) where
// the agent reads them. Root makes only what lies in root's own directories;
// inside the agent's directories istio-proxy writes, from what root hands it on
// stdin, so a link planted there leads nowhere istio-proxy could not go anyway.
// What a file replaces is kept in root's vmPrevDir. The guide's `chown -R
// istio-proxy` is not run: everything is made istio-proxy's as it is made.
func placeScript(tmp, ip, name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `set -e
umask 077
%[1]s
P=%[2]s
id -u "$P" >/dev/null 2>&1 || { echo "the VM has no user $P: the sidecar package makes it" >&2; exit 1; }
S=%[3]s
mkdir -p -m 0700 "$S" "$S/prev"; chown root:root "$S" "$S/prev"; chmod 0700 "$S" "$S/prev"
# A directory of the agent's: made by root where root owns its parent, else by
# the agent, which also replaces a link or file of its own in the way.
agent_dir() {
	if [ "$(stat -L -c %%u "$(dirname "$1")")" = 0 ]; then
		[ -d "$1" ] || mkdir -m 0755 "$1"
		chown -h "$P:" "$1"
	else
		as_user sh -c 'if [ -L "$1" ] || { [ -e "$1" ] && [ ! -d "$1" ]; }; then echo "replaced link: $1" >&2; rm -f "$1"; fi; mkdir -p -m 0755 "$1"' agent_dir "$1"
	fi
}
# /var/run/secrets is the agent's too: it makes its sockets' directories there.
agent_dir /etc/certs; agent_dir /var/run/secrets; agent_dir /var/run/secrets/tokens
agent_dir /var/lib/istio/envoy; agent_dir /etc/istio/config; agent_dir /etc/istio/proxy
# place SOURCE TARGET MODE [BACKUP]: written by the agent to a new file, renamed
# over TARGET; a different TARGET is first kept as $S/prev/BACKUP.
place() {
	if [ -n "${4:-}" ] && as_user test -f "$2" && ! as_user cmp -s -- "$2" - < "$1"; then
		if as_user cat -- "$2" > "$S/prev/$4.tmp"; then mv -f "$S/prev/$4.tmp" "$S/prev/$4"
		else rm -f "$S/prev/$4.tmp"; echo "not kept: $2" >&2; fi
	fi
	as_user sh -c 'umask 077; t=$(mktemp "$1.vm2mesh.XXXXXX") && cat > "$t" && chmod "$2" "$t" && mv -f "$t" "$1"' place "$2" "$3" < "$1"
}
`, remote.AsUserFunc(agentUser), agentUser, vmStateDir)
	for _, p := range placement {
		backup := path.Base(p.target)
		if p.file == "istio-token" {
			backup = "" // expired or not, not worth keeping
		}
		fmt.Fprintf(&b, "place %s %s %s %s\n", remote.Quote(path.Join(tmp, p.file)), p.target, p.mode, backup)
	}
	b.WriteString(hostsScript(ip, name) + "\n")
	return b.String()
}

// moveAsideScript moves the agent's certificate and key out of its reach, into
// vmPrevDir: the VM's only copy, read as the agent, kept by root.
const moveAsideScript = `set -e
umask 077
mkdir -p -m 0700 ` + vmPrevDir + `
for f in ` + agentCertPath + ` ` + agentKeyPath + `; do
	as_user test -f "$f" || continue
	b=` + vmPrevDir + `/$(basename "$f")
	as_user cat -- "$f" > "$b.tmp"
	mv -f "$b.tmp" "$b"
	as_user rm -f -- "$f"
done`

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
	tmp, err := env.VM.TempDir(ctx)
	if err != nil {
		return err
	}
	var files []remote.Transfer
	for _, p := range placement {
		files = append(files, remote.Transfer{Local: env.File(p.file), Remote: path.Join(tmp, p.file)})
	}
	if err := env.VM.UploadFiles(ctx, files); err != nil {
		return err
	}
	stale, why, err := staleAgentCert(ctx, env)
	if err != nil {
		return err
	}
	if stale {
		// Moved, not removed: it is the VM's only copy.
		if _, err := env.VM.RunRoot(ctx, remote.AsUserFunc(agentUser)+"\n"+moveAsideScript); err != nil {
			return err
		}
		out.Warnf("%s %s: moved it and its key aside (to %s), so the agent asks for a new one with the token", agentCertPath, why, vmPrevDir)
	}
	var stderr strings.Builder
	cleanup := fmt.Sprintf("\nrc=$?; rm -f %s/*; exit $rc", tmp)
	_, err = env.VM.Exec(ctx, remote.Cmd{Line: "(" + placeScript(tmp, ip, name) + ")" + cleanup, Root: true, Stderr: &stderr,
		Display: "placing the files and the /etc/hosts entry"})
	for _, l := range strings.Split(stderr.String(), "\n") {
		if r, ok := strings.CutPrefix(l, "replaced: "); ok {
			out.Warnf("/etc/hosts: replaced an older line for %s: %q (the original is kept as /etc/hosts.vm2mesh.orig)", name, r)
		}
		if f, ok := strings.CutPrefix(l, "replaced link: "); ok {
			out.Warnf("%s was a link or a file where the agent needs a directory: replaced (as istio-proxy, whose directory it is)", f)
		}
		if f, ok := strings.CutPrefix(l, "not kept: "); ok {
			out.Warnf("%s was replaced but not kept: istio-proxy, who owns it, cannot read it (is it a link to a file of someone else's?)", f)
		}
	}
	if err != nil {
		return WithHint(err, "the sidecar package must be installed first: it creates istio-proxy and /etc/istio")
	}
	env.vmChanged = true
	out.Summary("files in place, /etc/hosts: %s %s", ip, name)
	return nil
}
