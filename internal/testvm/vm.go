package testvm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
)

// Family is the VM's package family.
type Family string

const (
	Debian Family = "deb" // dpkg, Debian's os-release
	RHEL   Family = "rpm" // RHEL-like os-release, dpkg hidden, rpm database with the base dependencies
)

// Options shape a VM.
type Options struct {
	Family Family
	// ProvidesRPM is installed into the rpm database of a RHEL VM: a provides-only
	// package that stands for the base system a RHEL host has.
	ProvidesRPM string
	// Routes are addresses on the host side (the host ends of other VMs' veths)
	// this VM reaches through its own veth; nothing else is routed.
	Routes []string
	// HostKeyTypes are the host keys sshd offers, in sshd_config order: any of
	// "ed25519", "ecdsa", "rsa". Default: ed25519 alone.
	HostKeyTypes []string
	// SSHDConfig is appended to the VM's sshd configuration.
	SSHDConfig string
	// Files are written into the VM before sshd starts (absolute paths, 0644
	// unless Mode says otherwise).
	Files map[string]File
	// Behind puts the VM behind another: its veth pair's other end is in that
	// VM's network namespace, so only that VM reaches it (a bastion's network);
	// the host has no route to it.
	Behind *VM
}

// File is a file Options.Files writes.
type File struct {
	Data string
	Mode os.FileMode
}

// VM is one running sandbox VM.
type VM struct {
	Name        string
	Addr        string // the VM's address, inside its network namespace
	HostAddr    string // the host end of its veth pair
	Port        int
	HostKey     ssh.PublicKey            // the first of HostKeys
	Fingerprint string                   // SHA256:... of HostKey
	HostKeys    map[string]ssh.PublicKey // by Options.HostKeyTypes' names
	ClientKey   string                   // private key every user accepts
	Netns       string
	dir         string
	cmd         *exec.Cmd
	exited      chan struct{} // closed when the VM's process has been waited for
	slot        *os.File
	index       int
	hostVeth    string
	outerNetns  string // where hostVeth lives: "" for the host, else the VM this one is behind
	sshdPID     int    // PID 1 of the VM, as the host sees it
	sshdLogPath string
	stopped     bool
}

// Skip skips the test unless it can start VMs (root); CI runs as root.
func Skip(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sandbox VMs need root (namespaces, overlayfs mounts); CI runs these tests as root")
	}
}

// vmDir is a directory for one VM's overlay, named apart from the test: a
// comma in a test's name (t.TempDir) would split the mount's lowerdir=,upperdir=
// options.
func vmDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vm2mesh-vm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Start builds the image if needed and starts a VM; it stops when the test ends.
func Start(t testing.TB, o Options) *VM {
	t.Helper()
	Skip(t)
	img, err := BuildImage()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := start(img, vmDir(t), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Stop)
	return vm
}

// slot takes one of 60 address blocks, held by a lock for the VM's life, so VMs of
// test binaries running side by side never share names or addresses.
func takeSlot() (*os.File, int, error) {
	dir := filepath.Join(os.TempDir(), "vm2mesh-testvm-slots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, err
	}
	for i := 1; i <= 60; i++ {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("slot-%d", i)), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, 0, err
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			return f, i, nil
		}
		f.Close()
	}
	return nil, 0, fmt.Errorf("no free VM slot")
}

func start(img *Image, dir string, o Options) (*VM, error) {
	slot, i, err := takeSlot()
	if err != nil {
		return nil, err
	}
	// TEST-NET-2 (198.51.100.0/24), a /30 per VM: documentation addresses that no
	// real host has, only this VM's veth pair.
	vm := &VM{
		Name:      fmt.Sprintf("vm2mesh-vm%d", i),
		Addr:      fmt.Sprintf("198.51.100.%d", 4*i+2),
		HostAddr:  fmt.Sprintf("198.51.100.%d", 4*i+1),
		Port:      22,
		ClientKey: img.ClientKey,
		Netns:     fmt.Sprintf("vm2mesh-vm%d", i),
		dir:       dir,
		slot:      slot,
		index:     i,
		hostVeth:  fmt.Sprintf("v2m%dh", i),
	}
	ok := false
	defer func() {
		if !ok {
			vm.Stop()
		}
	}()
	if o.Behind != nil {
		vm.outerNetns = o.Behind.Netns
	}
	if err := vm.prepareUpper(o); err != nil {
		return nil, err
	}
	if err := vm.network(o.Routes); err != nil {
		return nil, err
	}
	if err := vm.boot(img, o); err != nil {
		return nil, err
	}
	ok = true
	return vm, nil
}

// prepareUpper writes the VM's own files into the overlay's upper layer.
func (vm *VM) prepareUpper(o Options) error {
	upper := filepath.Join(vm.dir, "upper")
	for _, d := range []string{"upper/etc/ssh/sshd_config.d", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(vm.dir, d), 0o755); err != nil {
			return err
		}
	}
	types := o.HostKeyTypes
	if len(types) == 0 {
		types = []string{"ed25519"}
	}
	vm.HostKeys = map[string]ssh.PublicKey{}
	var hostKeyLines []string
	keyFiles := map[string]File{}
	for _, typ := range types {
		private, public, err := hostKey(typ)
		if err != nil {
			return err
		}
		if vm.HostKey == nil {
			vm.HostKey, vm.Fingerprint = public, ssh.FingerprintSHA256(public)
		}
		vm.HostKeys[typ] = public
		name := "/etc/ssh/ssh_host_" + typ + "_key"
		keyFiles[name] = File{string(private), 0o600}
		keyFiles[name+".pub"] = File{string(ssh.MarshalAuthorizedKey(public)), 0o644}
		hostKeyLines = append(hostKeyLines, "HostKey "+name)
	}
	files := map[string]File{
		"/etc/hostname": {vm.Name + "\n", 0o644},
		// Without its own name in /etc/hosts, sudo waits ~40 s on DNS.
		"/etc/hosts": {"127.0.0.1\tlocalhost\n127.0.1.1\t" + vm.Name + "\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0o644},
		"/etc/ssh/sshd_config.d/vm2mesh-test.conf": {fmt.Sprintf("ListenAddress %s\n%s\nPermitRootLogin prohibit-password\nUsePAM no\n%s\n",
			vm.Addr, strings.Join(hostKeyLines, "\n"), o.SSHDConfig), 0o644},
	}
	for name, f := range keyFiles {
		files[name] = f
	}
	if o.Family == RHEL {
		files["/etc/os-release"] = File{"NAME=\"Rocky Linux\"\nVERSION_ID=\"9.4\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nPRETTY_NAME=\"Rocky Linux 9.4 (vm2mesh sandbox)\"\n", 0o644}
	}
	for name, f := range o.Files {
		if !filepath.IsAbs(name) {
			return fmt.Errorf("testvm: Files wants absolute paths, not %q", name)
		}
		if f.Mode == 0 {
			f.Mode = 0o644
		}
		files[name] = f
	}
	for name, f := range files {
		p := filepath.Join(upper, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(f.Data), f.Mode); err != nil {
			return err
		}
	}
	if o.Family == RHEL && o.ProvidesRPM != "" {
		data, err := os.ReadFile(o.ProvidesRPM)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(upper, "root"), 0o700); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(upper, "root", "base-provides.rpm"), data, 0o644)
	}
	return nil
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// network makes the VM's network namespace and its veth pair; nothing routes
// beyond the pair.
func (vm *VM) network(routes []string) error {
	_ = run("ip", "netns", "del", vm.Netns) // left over from a killed run
	_ = run("ip", "link", "del", vm.hostVeth)
	inner := fmt.Sprintf("v2m%dv", vm.index)
	// The outer end: in the host's namespace, or in the VM this one is behind.
	outer := []string{"ip"}
	cmds := [][]string{
		{"ip", "netns", "add", vm.Netns},
		{"ip", "link", "add", vm.hostVeth, "type", "veth", "peer", "name", inner},
		{"ip", "link", "set", inner, "netns", vm.Netns},
	}
	if vm.outerNetns != "" {
		outer = []string{"ip", "-n", vm.outerNetns}
		// The host has no way to it: said by a route of its own, so that a direct
		// attempt fails here and nothing goes out by the default route.
		_ = run("ip", "route", "del", "unreachable", vm.Addr+"/32")
		cmds = append([][]string{{"ip", "route", "add", "unreachable", vm.Addr + "/32"}}, cmds...)
		cmds = append(cmds, []string{"ip", "link", "set", vm.hostVeth, "netns", vm.outerNetns})
	}
	cmds = append(cmds,
		append(append([]string{}, outer...), "addr", "add", vm.HostAddr+"/30", "dev", vm.hostVeth),
		append(append([]string{}, outer...), "link", "set", vm.hostVeth, "up"),
	)
	cmds = append(cmds, [][]string{
		{"ip", "-n", vm.Netns, "addr", "add", vm.Addr + "/30", "dev", inner},
		{"ip", "-n", vm.Netns, "link", "set", inner, "up"},
		{"ip", "-n", vm.Netns, "link", "set", "lo", "up"},
	}...)
	for _, r := range routes {
		cmds = append(cmds, []string{"ip", "-n", vm.Netns, "route", "add", r + "/32", "via", vm.HostAddr})
	}
	for _, args := range cmds {
		if err := run(args...); err != nil {
			return err
		}
	}
	return nil
}

// boot mounts the overlay inside fresh mount, pid and uts namespaces (in the
// VM's network namespace) and makes sshd PID 1.
func (vm *VM) boot(img *Image, o Options) error {
	m := filepath.Join(vm.dir, "merged")
	var rhel string
	if o.Family == RHEL {
		// dpkg hidden; the base system's provides go into the rpm database.
		rhel = fmt.Sprintf(`rm -f %[1]s/usr/bin/dpkg %[1]s/usr/bin/dpkg-deb %[1]s/usr/bin/dpkg-query
[ -f %[1]s/root/base-provides.rpm ] && chroot %[1]s rpm -i --quiet /root/base-provides.rpm
`, m)
	}
	script := fmt.Sprintf(`set -e
mount -t overlay overlay -o lowerdir=%[1]s,upperdir=%[2]s/upper,workdir=%[2]s/work %[3]s
mount -t proc proc %[3]s/proc
mount -t tmpfs -o mode=755 tmpfs %[3]s/run
mkdir -p %[3]s/run/sshd %[3]s/run/lock
mount -t devpts -o newinstance,ptmxmode=0666 devpts %[3]s/dev/pts
hostname %[4]s
%[5]s
exec chroot %[3]s /usr/sbin/sshd -D -e
`, img.Root, vm.dir, m, vm.Name, rhel)
	vm.sshdLogPath = filepath.Join(vm.dir, "sshd.log")
	logf, err := os.Create(vm.sshdLogPath)
	if err != nil {
		return err
	}
	vm.cmd = exec.Command("ip", "netns", "exec", vm.Netns,
		"unshare", "--mount", "--pid", "--uts", "--fork", "--propagation", "private", "sh", "-c", script)
	vm.cmd.Stdout, vm.cmd.Stderr = logf, logf
	vm.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := vm.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	vm.exited = make(chan struct{})
	go func() { _ = vm.cmd.Wait(); logf.Close(); close(vm.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if vm.sshdPID == 0 {
			vm.sshdPID = childOf(vm.cmd.Process.Pid)
		}
		if vm.listening() && vm.sshdPID != 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(vm.sshdLogPath)
	return fmt.Errorf("the VM's sshd did not come up in 30s:\n%s", testcluster.LastLines(string(log), 20))
}

// listening: sshd accepts connections. The host dials it; a VM behind another
// is not the host's to dial, and says so in its log.
func (vm *VM) listening() bool {
	if vm.outerNetns != "" {
		log, _ := os.ReadFile(vm.sshdLogPath)
		return bytes.Contains(log, []byte("Server listening on "+vm.Addr+" port "+strconv.Itoa(vm.Port)))
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(vm.Addr, strconv.Itoa(vm.Port)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// childOf finds the single child of pid (unshare forks the VM's PID 1).
func childOf(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// Stop kills the VM's PID 1 (unshare itself ignores SIGTERM), which ends every
// process in it and with them its mounts, then removes its network.
func (vm *VM) Stop() {
	if vm.stopped {
		return
	}
	vm.stopped = true
	if vm.sshdPID != 0 {
		_ = syscall.Kill(vm.sshdPID, syscall.SIGKILL)
	}
	if vm.exited != nil {
		_ = vm.cmd.Process.Kill()
		select {
		case <-vm.exited:
		case <-time.After(5 * time.Second):
		}
	}
	_ = run("ip", "netns", "del", vm.Netns) // takes the veth pair with it
	if vm.outerNetns == "" {
		_ = run("ip", "link", "del", vm.hostVeth)
	} else {
		_ = run("ip", "route", "del", "unreachable", vm.Addr+"/32")
	}
	if vm.slot != nil {
		vm.slot.Close()
	}
}

// Exec runs a shell command inside the VM (its namespaces and root), for tests to
// look at what vm2mesh did.
func (vm *VM) Exec(ctx context.Context, script string) (string, error) {
	cmd := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(vm.sshdPID), "-m", "-u", "-p", "-n", "-r", "-w", "--", "/bin/sh", "-c", script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("in %s: %s: %v: %s", vm.Name, script, err, stderr.String())
	}
	return stdout.String(), nil
}

// MustExec is Exec that fails the test.
func (vm *VM) MustExec(t testing.TB, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := vm.Exec(ctx, script)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// KnownHostsLine is the line an operator's known_hosts would have for this VM.
func (vm *VM) KnownHostsLine() string {
	return vm.Addr + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(vm.HostKey)))
}

// DropConnections kills the VM's sshd session processes (not PID 1), as a network
// failure would end them.
func (vm *VM) DropConnections() error {
	// Anchored, so it matches sshd's session processes and not this shell.
	_, err := vm.Exec(context.Background(), "pkill -9 -f '^sshd: [a-z_][a-z0-9_-]*( \\[priv\\]|@)'; true")
	return err
}

// hostKey makes a host key of an sshd key type: its private key in OpenSSH's
// format and its public key.
func hostKey(typ string) ([]byte, ssh.PublicKey, error) {
	var priv crypto.Signer
	var err error
	switch typ {
	case "ed25519":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	default:
		return nil, nil, fmt.Errorf("testvm: no host key type %q (ed25519, ecdsa, rsa)", typ)
	}
	if err != nil {
		return nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(block), signer.PublicKey(), nil
}
