package steps

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vm2mesh/vm2mesh/remote"
)

// Prompts are how a run asks the operator. The TUI answers from dialogs; headless
// runs answer from the answers file's files, or refuse.
type Prompts struct {
	HostKey    func(host, keyType, fingerprint string) (remote.HostKeyDecision, error)
	Passphrase func(file string) (string, error)
	Password   func(user, host string) (string, error)
	Sudo       func(user, host string) (string, error)
	// Question answers what a keyboard-interactive login asks besides the
	// password (a one-time code); nil refuses such logins.
	Question func(user, host, instruction, question string, echo bool) (string, error)
	// Connecting hears how vm2mesh will reach the VM (ssh_config applied as
	// ssh applies it: hops, users, keys, known_hosts) before it connects.
	Connecting func(remote.Route)
	// NeverRememberHostKey: nothing is written to known_hosts; a pinned key is
	// trusted for this connection only (doctor changes nothing).
	NeverRememberHostKey bool
	// Trace hears each remote command as its errors show it (secrets elided),
	// for a front end's debug log.
	Trace func(command string)
}

// VMFacts are what the VM is, read without changing it.
type VMFacts struct {
	OS      string // PRETTY_NAME from os-release
	Family  string // "deb" or "rpm"
	Arch    string // amd64 or arm64
	Systemd bool   // systemd is PID 1
	FreeKB  int64  // free space under /var/lib
	Root    string // how commands run as root
}

// NewEnv is an Env without a cluster, for the VM half alone: it reads the five
// files from the work directory.
func NewEnv(s Settings) (*Env, error) {
	if errs := s.Validate(); len(errs) > 0 {
		return nil, ValidationError(errs)
	}
	workDir, err := filepath.Abs(expandHome(s.WorkDir))
	if err != nil {
		return nil, fmt.Errorf("workDir: %w", err)
	}
	return &Env{Settings: s, WorkDir: workDir}, nil
}

// ConnectVM logs in to the VM, finds how to become root and reads what the VM is.
// It changes nothing on the VM; every failure names what to fix.
func (e *Env) ConnectVM(ctx context.Context, p Prompts) error {
	v := e.Settings.VM
	if errs := e.Settings.ValidateVM(); len(errs) > 0 {
		return ValidationError(errs)
	}
	if v.Package != "" {
		if _, err := os.Stat(v.Package); err != nil {
			return fmt.Errorf("vm.package: %v; give the path of istio-sidecar.rpm or .deb", err)
		}
	}
	return e.dialVM(ctx, p)
}

// dialVM is ConnectVM without the package's checks (doctor needs no package).
func (e *Env) dialVM(ctx context.Context, p Prompts) error {
	v := e.Settings.VM
	password := p.Password
	if v.PasswordFile != "" {
		password = fileSecret(v.PasswordFile)
	}
	sudo := p.Sudo
	if v.SudoPasswordFile != "" {
		sudo = func(string, string) (string, error) { return fileSecret(v.SudoPasswordFile)("", "") }
	}
	opts := remote.Options{
		Host: v.Host, Port: v.Port, User: v.User, IdentityFile: v.IdentityFile, SSHConfig: v.SSHConfig,
		HostKeys: remote.HostKeyPolicy{
			KnownHostsFile: expandHome(v.KnownHostsFile),
			Pinned:         v.HostKeyFingerprint,
			AcceptNew:      v.AcceptNewHostKey,
			Ask:            p.HostKey,
			NoRemember:     p.NeverRememberHostKey,
		},
		Passphrase: p.Passphrase,
		Password:   password,
		Question:   p.Question,
		Trace:      p.Trace,
	}
	route, err := remote.Describe(ctx, opts)
	if err != nil {
		return err
	}
	if p.Connecting != nil {
		p.Connecting(route)
	}
	c, err := remote.DialRoute(ctx, opts, route)
	if err != nil {
		return err
	}
	var ask func() (string, error)
	if sudo != nil {
		ask = func() (string, error) { return sudo(c.Target.User, c.Target.HostName) }
	}
	// A refused login leaves nothing on the VM, its private directory included.
	if err := c.Root(ctx, ask); err != nil {
		_ = c.RemoveTempDir(context.Background())
		c.Close()
		return err
	}
	e.VM = c
	if err := e.readFacts(ctx); err != nil {
		_ = c.RemoveTempDir(context.Background())
		c.Close()
		e.VM = nil
		return err
	}
	return nil
}

// fileSecret reads a secret from a file, without its trailing newline.
func fileSecret(path string) func(string, string) (string, error) {
	return func(string, string) (string, error) {
		b, err := os.ReadFile(expandHome(path))
		if err != nil {
			return "", fmt.Errorf("reading the password file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
}

const factsScript = `. /etc/os-release 2>/dev/null; echo "os=$PRETTY_NAME"
if command -v dpkg >/dev/null 2>&1; then echo family=deb; elif command -v rpm >/dev/null 2>&1; then echo family=rpm; else echo family=; fi
echo "arch=$(uname -m)"
if [ -d /run/systemd/system ]; then echo systemd=1; else echo systemd=0; fi
echo "free=$(df -Pk /var/lib | awk 'NR==2 {print $4}')"`

func (e *Env) readFacts(ctx context.Context) error {
	out, err := e.VM.Run(ctx, factsScript)
	if err != nil {
		return fmt.Errorf("reading what the VM is: %w", err)
	}
	f := VMFacts{Root: e.VM.AsRoot()}
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "os":
			f.OS = remote.CleanText(v) // the VM's to say, and shown on screen
		case "family":
			f.Family = v
		case "arch":
			switch v {
			case "x86_64", "amd64":
				f.Arch = "amd64"
			case "aarch64", "arm64":
				f.Arch = "arm64"
			default:
				f.Arch = v
			}
		case "systemd":
			f.Systemd = v == "1"
		case "free":
			f.FreeKB, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	e.Facts = f
	return nil
}

// PackageName is the file name Istio publishes for the VM's family and arch.
func (f VMFacts) PackageName() string {
	name := "istio-sidecar"
	if f.Arch != "" && f.Arch != "amd64" {
		name += "-" + f.Arch
	}
	return name + "." + f.Family
}

// vmReady tells steps that need the VM whether it is connected.
func (e *Env) vmReady() error {
	if e.VM == nil {
		return fmt.Errorf("not connected to the VM")
	}
	return nil
}
