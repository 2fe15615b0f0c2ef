package steps

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/vm2mesh/vm2mesh/remote"
)

// packageMarker remembers which package vm2mesh installed, so a re-run with the
// same one skips. It is root's (in vmStateDir): one in the agent's directories
// could be a link that root would write through.
const packageMarker = vmStateDir + "/package"

// VMPackage installs Istio's sidecar package first: its post-install creates the
// istio-proxy user and /etc/istio, which the files need.
type VMPackage struct{}

func (VMPackage) Name() string  { return "vm-package" }
func (VMPackage) Title() string { return "Install the sidecar package" }

// packageID is what identifies the package: its SHA-256, or its URL.
func packageID(env *Env) (string, error) {
	v := env.Settings.VM
	if v.Package == "" {
		if v.PackageSHA256 != "" {
			return strings.ToLower(strings.TrimSpace(v.PackageSHA256)), nil
		}
		return packageURL(env), nil
	}
	sum, _, err := remote.FileSHA256(v.Package)
	if err != nil {
		return "", fmt.Errorf("vm.package: %w", err)
	}
	want := strings.ToLower(strings.TrimSpace(v.PackageSHA256))
	if want == "" {
		// Istio publishes a .sha256 beside each package.
		if b, err := os.ReadFile(v.Package + ".sha256"); err == nil {
			want = strings.ToLower(strings.Fields(string(b) + " ")[0])
		}
	}
	if want != "" && want != sum {
		return "", WithHint(fmt.Errorf("vm.package %s has SHA-256 %s, not %s", v.Package, sum, want), "download the package again")
	}
	return sum, nil
}

// packageURL is vm.packageURL, completed with the VM's file name when it ends in /.
func packageURL(env *Env) string {
	u := env.Settings.VM.PackageURL
	if strings.HasSuffix(u, "/") {
		u += env.Facts.PackageName()
	}
	return u
}

func installCommand(env *Env, file string) string {
	if env.Facts.Family == "rpm" {
		return "rpm -Uvh --replacepkgs " + remote.Quote(file)
	}
	return "dpkg -i " + remote.Quote(file)
}

func installedQuery(env *Env) string {
	if env.Facts.Family == "rpm" {
		return "rpm -q istio-sidecar"
	}
	return "dpkg -s istio-sidecar"
}

func (VMPackage) Check(ctx context.Context, env *Env) (Status, error) {
	if err := env.vmReady(); err != nil {
		return Status{}, err
	}
	id, err := packageID(env)
	if err != nil {
		return Status{}, err
	}
	out, err := env.VM.RunRoot(ctx, fmt.Sprintf("%s >/dev/null 2>&1 && cat %s 2>/dev/null; true", installedQuery(env), packageMarker))
	if err != nil {
		return Status{}, err
	}
	if strings.TrimSpace(out) == id {
		return Status{Skip: true, Reason: "this istio-sidecar package is already installed"}, nil
	}
	return Status{Reason: "istio-sidecar is not installed from this package yet"}, nil
}

func (VMPackage) Plan(env *Env) ([]Action, error) {
	v := env.Settings.VM
	file := "$TMP/" + env.Facts.PackageName()
	var acts []Action
	if v.Package != "" {
		acts = append(acts, Action{Kind: Note, Title: "upload", Body: fmt.Sprintf("upload %s to %s on the VM (a private temp dir), checked by SHA-256", v.Package, file)})
	} else {
		acts = append(acts, Action{Kind: Command, Title: "download on the VM", Argv: curlArgv(env, file, packageURL(env))})
		switch {
		case v.PackageSHA256 != "":
			acts = append(acts, Action{Kind: Note, Title: "checksum", Body: "checked against vm.packageSHA256"})
		case v.AllowUnverifiedPackage:
			acts = append(acts, Action{Kind: Note, Title: "checksum", Body: "checked against " + packageURL(env) + ".sha256 when it is published; installed unchecked otherwise (vm.allowUnverifiedPackage)"})
		default:
			acts = append(acts, Action{Kind: Note, Title: "checksum", Body: "checked against " + packageURL(env) + ".sha256, published beside it; without one the step stops"})
		}
	}
	return append(acts, Action{Kind: Command, Title: "install as root", Argv: []string{"sh", "-c", installCommand(env, file)}}), nil
}

func (VMPackage) Run(ctx context.Context, env *Env, out *Output) error {
	id, err := packageID(env)
	if err != nil {
		return err
	}
	tmp, err := env.VM.TempDir(ctx)
	if err != nil {
		return err
	}
	v := env.Settings.VM
	file := path.Join(tmp, env.Facts.PackageName())
	if v.Package != "" {
		out.Logf("uploading %s", v.Package)
		if err := env.VM.Upload(ctx, v.Package, file, func(done, total int64) { out.Progress("upload "+path.Base(v.Package), done, total) }); err != nil {
			return err
		}
	} else {
		u := packageURL(env)
		sum, err := downloadChecksum(ctx, env, u, out)
		if err != nil {
			return err
		}
		out.Logf("downloading %s on the VM", u)
		line := ShellJoin(curlArgv(env, file, u))
		if sum != "" {
			line += fmt.Sprintf(" && echo %s | sha256sum -c -", remote.Quote(sum+"  "+file))
		}
		if _, err := env.VM.Run(ctx, line); err != nil {
			return WithHint(err, "the VM could not download the package (or its checksum did not match): check vm.packageURL and the VM's access to it, or give vm.package")
		}
	}
	out.Logf("installing with %s", strings.Fields(installCommand(env, file))[0])
	res, err := env.VM.RunRoot(ctx, installCommand(env, file)+fmt.Sprintf(" && (umask 077; mkdir -p %[1]s && echo %[2]s > %[3]s.tmp && mv -f %[3]s.tmp %[3]s); rc=$?; rm -f %[4]s; exit $rc",
		vmStateDir, remote.Quote(id), packageMarker, remote.Quote(file)))
	if err != nil {
		return WithHint(err, "the package manager refused the package: read its output above; its dependencies are iproute(2), iptables, sudo and hostname")
	}
	for _, l := range strings.Split(strings.TrimSpace(res), "\n") {
		if l != "" {
			out.Logf("%s", l)
		}
	}
	env.vmChanged = true
	out.Summary("installed %s", env.Facts.PackageName())
	return nil
}

// curlArgv downloads u to file: https only (http too with
// vm.allowInsecurePackageURL), redirects included; "--" so that no URL is read as
// an option.
func curlArgv(env *Env, file, u string, extra ...string) []string {
	proto := "=https"
	if env.Settings.VM.AllowInsecurePackageURL {
		proto = "=http,https"
	}
	argv := append([]string{"curl", "-fsSL", "--retry", "2", "--proto", proto, "--proto-redir", proto}, extra...)
	return append(argv, "-o", file, "--", u)
}

// downloadChecksum is the SHA-256 the downloaded package must have:
// vm.packageSHA256, else the .sha256 Istio publishes beside each package. With
// neither, the package is not installed unless vm.allowUnverifiedPackage says so.
func downloadChecksum(ctx context.Context, env *Env, u string, out *Output) (string, error) {
	v := env.Settings.VM
	if v.PackageSHA256 != "" {
		return strings.ToLower(strings.TrimSpace(v.PackageSHA256)), nil
	}
	published, err := env.VM.Run(ctx, ShellJoin(curlArgv(env, "-", u+".sha256", "--max-filesize", "4096")))
	if err == nil {
		if sum := strings.ToLower(strings.Fields(published + " ")[0]); isSHA256(sum) {
			return sum, nil
		}
		err = fmt.Errorf("it does not start with a SHA-256")
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if v.AllowUnverifiedPackage {
		out.Warnf("%s.sha256 is not usable (%v): installing the package unchecked, as vm.allowUnverifiedPackage says", u, oneLine(err.Error()))
		return "", nil
	}
	return "", WithHint(fmt.Errorf("vm.packageURL: no checksum to check the package against: %s.sha256 is not usable (%v)", u, oneLine(err.Error())),
		"set vm.packageSHA256 to the package's SHA-256 (Istio publishes it beside the package), or vm.allowUnverifiedPackage: true to install it unchecked")
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}
