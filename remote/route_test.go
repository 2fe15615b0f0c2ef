package remote_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
	"github.com/vm2mesh/vm2mesh/remote"
)

// These tests reach sandbox VMs the way `ssh HOST` would with the same
// ssh_config: through jump hosts, through a ProxyCommand, with Match, Include
// and tokens. Nothing is dialed but the VMs' addresses and loopback.

// writeFile writes a test file 0600, as ssh wants its config and keys.
func writeFile(t *testing.T, path, data string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// knownHosts writes a known_hosts file with the VMs' keys.
func knownHosts(t *testing.T, dir string, vms ...*testvm.VM) string {
	t.Helper()
	var lines []string
	for _, vm := range vms {
		lines = append(lines, vm.KnownHostsLine())
	}
	return writeFile(t, filepath.Join(dir, "known_hosts"), strings.Join(lines, "\n")+"\n")
}

// behind checks that the host itself cannot reach vm, so that a login proves
// the route.
func behind(t *testing.T, vm *testvm.VM) {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort(vm.Addr, "22"), 3*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("the host reaches %s directly: the test would prove nothing", vm.Addr)
	}
	if !strings.Contains(err.Error(), "no route to host") {
		t.Fatalf("direct dial of %s: want no route to host, got %v", vm.Addr, err)
	}
}

// rootThrough logs in by o, becomes root and runs id -u: the bar for a route.
func rootThrough(t *testing.T, o remote.Options) *remote.Client {
	t.Helper()
	ctx := context.Background()
	c, err := remote.Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Root(ctx, nil); err != nil {
		t.Fatal(err)
	}
	out, err := c.RunRoot(ctx, "id -u")
	if err != nil || out != "0\n" {
		t.Fatalf("id -u as root through the route: %q %v\nroute:\n%s", out, err, c.Route)
	}
	return c
}

// cameFrom checks that the VM saw the login come from addr (SSH_CONNECTION).
func cameFrom(t *testing.T, c *remote.Client, addr, setting string) {
	t.Helper()
	out, err := c.Run(context.Background(), "echo $SSH_CONNECTION")
	if err != nil || !strings.HasPrefix(out, addr+" ") {
		t.Errorf("%s: the VM saw the login come from %q (%v), want %s", setting, out, err, addr)
	}
}

func transports(r remote.Route) string {
	var out []string
	for i, h := range r.Hops {
		out = append(out, h.Alias+" "+r.Transport(i))
	}
	return strings.Join(out, ", ")
}

func TestProxyJumpThroughABastion(t *testing.T) {
	bastion := testvm.Start(t, testvm.Options{})
	target := testvm.Start(t, testvm.Options{Behind: bastion})
	behind(t, target)
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "config"), fmt.Sprintf(`Host bastion
	HostName %s
	User root
	IdentityFile %s

Host target
	HostName %s
	User root
	IdentityFile %[2]s
	ProxyJump bastion
`, bastion.Addr, bastion.ClientKey, target.Addr))
	o := remote.Options{Host: "target", SSHConfig: cfg, Timeout: 10 * time.Second,
		HostKeys: remote.HostKeyPolicy{KnownHostsFile: knownHosts(t, dir, bastion, target)}}

	route, err := remote.Describe(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got := transports(route); got != "bastion direct, target via bastion" {
		t.Errorf("ProxyJump bastion: route %s\n%s", got, route)
	}
	c := rootThrough(t, o)
	cameFrom(t, c, target.HostAddr, "ProxyJump bastion")
}

func TestProxyJumpOfAJumpHost(t *testing.T) {
	b1 := testvm.Start(t, testvm.Options{})
	b2 := testvm.Start(t, testvm.Options{Behind: b1})
	target := testvm.Start(t, testvm.Options{Behind: b2})
	behind(t, b2)
	behind(t, target)
	dir := t.TempDir()
	kh := knownHosts(t, dir, b1, b2, target)
	cfg := filepath.Join(dir, "config")
	// b1 is also set up for the OpenSSH client that b2cmd's ProxyCommand runs.
	writeFile(t, cfg, fmt.Sprintf(`Host b1
	HostName %[1]s
	UserKnownHostsFile %[5]s
	StrictHostKeyChecking yes
	BatchMode yes

Host b2
	HostName %[2]s
	ProxyJump b1

Host b2cmd
	HostName %[2]s
	ProxyCommand ssh -F %[6]s -W %%h:%%p b1

Host target
	HostName %[3]s
	ProxyJump b2

Host target-via-b2cmd
	HostName %[3]s
	ProxyJump b2cmd

Host *
	User root
	IdentityFile %[4]s
`, b1.Addr, b2.Addr, target.Addr, b1.ClientKey, kh, cfg))

	for _, tc := range []struct{ host, setting, want string }{
		{"target", "ProxyJump b2, and b2's own ProxyJump b1", "b1 direct, b2 via b1, target via b2"},
		{"target-via-b2cmd", "ProxyJump b2cmd, and b2cmd's own ProxyCommand", fmt.Sprintf(`b2cmd ProxyCommand "ssh -F %s -W %s:22 b1", target-via-b2cmd via b2cmd`, cfg, b2.Addr)},
	} {
		t.Run(tc.host, func(t *testing.T) {
			o := remote.Options{Host: tc.host, SSHConfig: cfg, Timeout: 10 * time.Second, HostKeys: remote.HostKeyPolicy{KnownHostsFile: kh}}
			route, err := remote.Describe(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if got := transports(route); got != tc.want {
				t.Errorf("%s: route %s, want %s", tc.setting, got, tc.want)
			}
			c := rootThrough(t, o)
			cameFrom(t, c, target.HostAddr, tc.setting)
			c.Close()
		})
	}
}

// proxyProcesses lists the processes whose command line holds marker.
func proxyProcesses(t *testing.T, marker string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		if err != nil || !strings.Contains(args, marker) || e.Name() == fmt.Sprint(os.Getpid()) {
			continue
		}
		out = append(out, e.Name()+": "+args)
	}
	return out
}

func TestProxyCommandWithOpenSSH(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("needs the OpenSSH client for the ProxyCommand")
	}
	bastion := testvm.Start(t, testvm.Options{})
	target := testvm.Start(t, testvm.Options{Behind: bastion})
	behind(t, target)
	dir := t.TempDir()
	kh := writeFile(t, filepath.Join(dir, "bastion_known_hosts"), bastion.KnownHostsLine()+"\n")
	cfg := filepath.Join(dir, "config")
	writeFile(t, cfg, fmt.Sprintf(`Host bastion
	HostName %[1]s
	User root
	IdentityFile %[2]s
	UserKnownHostsFile %[3]s
	StrictHostKeyChecking yes
	BatchMode yes

Host target
	HostName %[4]s
	User root
	IdentityFile %[2]s
	ProxyCommand ssh -F %[5]s -W %%h:%%p bastion
`, bastion.Addr, bastion.ClientKey, kh, target.Addr, cfg))
	o := remote.Options{Host: "target", SSHConfig: cfg, Timeout: 10 * time.Second,
		HostKeys: remote.HostKeyPolicy{KnownHostsFile: filepath.Join(dir, "known_hosts"), Pinned: target.Fingerprint}}

	route, err := remote.Describe(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`target ProxyCommand "ssh -F %s -W %s:22 bastion"`, cfg, target.Addr)
	if got := transports(route); got != want {
		t.Errorf("ProxyCommand with %%h:%%p: route %s, want %s", got, want)
	}
	c := rootThrough(t, o)
	cameFrom(t, c, target.HostAddr, "ProxyCommand ssh -W")
	if running := proxyProcesses(t, cfg); len(running) == 0 {
		t.Error("ProxyCommand: no ssh -W process while connected")
	}
	if err := c.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	if running := proxyProcesses(t, cfg); len(running) > 0 {
		t.Errorf("ProxyCommand still runs after Close: %q", running)
	}
}

// A ProxyCommand that fails, or never answers, ends with Dial: its stderr in
// the error, nothing left running. No VM: the commands never reach one.
func TestProxyCommandFailureAndCancel(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "config"), `Host refuses
	ProxyCommand sh -c 'echo "bastion says no to %h" >&2; exit 3'

Host silent
	ProxyCommand sleep 86399
`)
	ctx := context.Background()
	o := remote.Options{Host: "refuses", SSHConfig: cfg, Timeout: 5 * time.Second,
		HostKeys: remote.HostKeyPolicy{KnownHostsFile: filepath.Join(dir, "known_hosts")}}
	_, err := remote.Dial(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "bastion says no to refuses") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("ProxyCommand that fails: want its stderr and exit status in the error, got %v", err)
	}

	o.Host = "silent"
	o.Timeout = time.Second
	start := time.Now()
	if _, err := remote.Dial(ctx, o); err == nil {
		t.Error("ProxyCommand that never answers: Dial succeeded")
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("ProxyCommand that never answers: Dial took %s with Timeout 1s", d)
	}
	if running := proxyProcesses(t, "sleep 86399"); len(running) > 0 {
		t.Errorf("ProxyCommand still runs after Dial timed out: %q", running)
	}

	cctx, cancel := context.WithCancel(ctx)
	o.Timeout = time.Minute
	time.AfterFunc(500*time.Millisecond, cancel)
	start = time.Now()
	if _, err := remote.Dial(cctx, o); err == nil {
		t.Error("ProxyCommand, context cancelled: Dial succeeded")
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("ProxyCommand, context cancelled after 0.5s: Dial took %s", d)
	}
	if running := proxyProcesses(t, "sleep 86399"); len(running) > 0 {
		t.Errorf("ProxyCommand still runs after the context was cancelled: %q", running)
	}
}

func TestProxyJumpLoopAndSpecs(t *testing.T) {
	cfg := writeFile(t, filepath.Join(t.TempDir(), "config"), `Host l1
	ProxyJump l2
Host l2
	ProxyJump l1
Host specs
	ProxyJump u@[198.51.100.250]:2222,ssh://w@j2:23,j3
`)
	ctx := context.Background()
	if _, err := remote.Describe(ctx, remote.Options{Host: "l1", SSHConfig: cfg}); err == nil || !strings.Contains(err.Error(), "ProxyJump loop") {
		t.Errorf("ProxyJump l2 / ProxyJump l1: want a loop error, got %v", err)
	}
	r, err := remote.Describe(ctx, remote.Options{Host: "specs", SSHConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range r.Hops {
		got = append(got, h.String())
	}
	local := r.Target().User
	want := []string{"u@198.51.100.250:2222", "w@j2:23", local + "@j3:22", local + "@specs:22"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ProxyJump specs: hops %q, want %q", got, want)
	}
}

// sshG runs the real ssh -G, for comparison.
func sshG(t *testing.T, ssh string, args ...string) map[string][]string {
	t.Helper()
	out, err := exec.Command(ssh, append([]string{"-G"}, args...)...).Output()
	if err != nil {
		t.Fatalf("ssh -G %q: %v", args, err)
	}
	g := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		g[k] = append(g[k], v)
	}
	return g
}

// sameAsSSH compares a resolved hop with what ssh -G printed, field by field;
// tokens that ssh -G leaves for later are expanded by expand.
func sameAsSSH(t *testing.T, what string, h remote.Hop, g, defaults map[string][]string, expand *strings.Replacer) {
	t.Helper()
	if reflect.DeepEqual(g["identityfile"], defaults["identityfile"]) {
		g["identityfile"] = nil // nobody configured them: Hop says so by nil
	}
	first := func(k string) string {
		if len(g[k]) == 0 {
			return ""
		}
		return g[k][0]
	}
	list := func(k string) []string {
		var out []string
		for _, v := range g[k] {
			out = append(out, strings.Fields(expand.Replace(v))...)
		}
		return out
	}
	strict := map[string]string{"true": "yes", "false": "no"}[first("stricthostkeychecking")]
	if strict == "" {
		strict = first("stricthostkeychecking")
	}
	proxy := expand.Replace(first("proxycommand"))
	if proxy == "none" {
		proxy = ""
	}
	for _, f := range []struct {
		setting   string
		got, want any
	}{
		{"HostName", h.HostName, first("hostname")},
		{"Port", fmt.Sprint(h.Port), first("port")},
		{"User", h.User, first("user")},
		{"IdentityFile", h.IdentityFiles, list("identityfile")},
		{"CertificateFile", h.CertificateFiles, list("certificatefile")},
		{"IdentityAgent", h.IdentityAgent, first("identityagent")},
		{"IdentitiesOnly", h.IdentitiesOnly, first("identitiesonly") == "yes"},
		{"UserKnownHostsFile", h.UserKnownHostsFiles, list("userknownhostsfile")},
		{"GlobalKnownHostsFile", h.GlobalKnownHostsFiles, list("globalknownhostsfile")},
		{"HostKeyAlias", h.HostKeyAlias, first("hostkeyalias")},
		{"StrictHostKeyChecking", h.StrictHostKeyChecking, strict},
		{"HashKnownHosts", h.HashKnownHosts, first("hashknownhosts") == "yes"},
		{"ProxyCommand", h.ProxyCommand, proxy},
		{"ProxyJump", strings.Join(h.ProxyJump, ","), expand.Replace(first("proxyjump"))},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("%s: %s: vm2mesh %#v, ssh -G %#v", what, f.setting, f.got, f.want)
		}
	}
}

func TestMatchIncludeAndTokensAsSSHG(t *testing.T) {
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("compares with the OpenSSH client's ssh -G")
	}
	vm := testvm.Start(t, testvm.Options{})
	dir := t.TempDir()
	ctx := context.Background()
	// The key is found only if %r, %h and %p expand as ssh expands them.
	key, err := os.ReadFile(vm.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "keys", "root@"+vm.Addr+"-22"), string(key))
	writeFile(t, filepath.Join(dir, "conf.d", "10-vm.conf"), `Host vm
	IdentitiesOnly yes
	IdentityAgent none
	HostKeyAlias the-vm
`)
	cfg := writeFile(t, filepath.Join(dir, "config"), fmt.Sprintf(`# Before any Host line, so it applies to every host.
Include %[2]s/conf.d/*.conf

Host vm
	HostName %[1]s
	User root

# Match host sees the HostName, Match user the user so far (or -l).
Match host %[1]s user root
	IdentityFile %[2]s/keys/%%r@%%h-%%p
	CertificateFile %[2]s/certs/%%n-%%r
	UserKnownHostsFile %[2]s/kh-%%h %[2]s/kh-all
Match user nobody
	IdentityFile %[2]s/keys/for-nobody

Host proxied
	HostName real.example
	Port 2200
	User u
	ProxyCommand connect %%r@%%h:%%p %%n

Host *
	StrictHostKeyChecking yes
	GSSAPIAuthentication yes
`, vm.Addr, dir))
	defaults := sshG(t, ssh, "-F", os.DevNull, "defaults.invalid")
	tokens := func(user, host, port, alias string) *strings.Replacer {
		return strings.NewReplacer("%r", user, "%h", host, "%p", port, "%n", alias)
	}

	for _, tc := range []struct {
		host, user string
		expand     *strings.Replacer
	}{
		{"vm", "", tokens("root", vm.Addr, "22", "vm")},
		{"vm", "nobody", tokens("nobody", vm.Addr, "22", "vm")},
		{"proxied", "", tokens("u", "real.example", "2200", "proxied")},
	} {
		h, err := remote.Resolve(ctx, cfg, tc.host, 0, tc.user)
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"-F", cfg}
		if tc.user != "" {
			args = append(args, "-l", tc.user)
		}
		what := fmt.Sprintf("Host %s, user %q", tc.host, tc.user)
		sameAsSSH(t, what, h, sshG(t, ssh, append(args, tc.host)...), defaults, tc.expand)
		if h.Source != "ssh -G" || !reflect.DeepEqual(h.Ignored, []string{"GSSAPIAuthentication yes"}) {
			t.Errorf("%s: source %q, ignored %q", what, h.Source, h.Ignored)
		}
	}
	// Spelled out too, in case ssh -G and vm2mesh agree on something wrong.
	h, _ := remote.Resolve(ctx, cfg, "vm", 0, "")
	if want := []string{dir + "/keys/root@" + vm.Addr + "-22"}; !reflect.DeepEqual(h.IdentityFiles, want) {
		t.Errorf("Match host, user and IdentityFile %%r@%%h-%%p: %q, want %q", h.IdentityFiles, want)
	}
	if h.HostKeyAlias != "the-vm" || !h.IdentitiesOnly {
		t.Errorf("Include: HostKeyAlias %q, IdentitiesOnly %v", h.HostKeyAlias, h.IdentitiesOnly)
	}
	if h, _ := remote.Resolve(ctx, cfg, "proxied", 0, ""); h.ProxyCommand != "connect u@real.example:2200 proxied" {
		t.Errorf("ProxyCommand connect %%r@%%h:%%p %%n: %q", h.ProxyCommand)
	}

	// And the login: the key by Match and tokens, the host by HostName.
	rootThrough(t, remote.Options{Host: "vm", SSHConfig: cfg, Timeout: 10 * time.Second,
		HostKeys: remote.HostKeyPolicy{KnownHostsFile: filepath.Join(dir, "kh-all"), Pinned: vm.Fingerprint}})

	// Without an OpenSSH client: Match is refused, by name; a config without
	// Match resolves as ssh -G does.
	t.Setenv("PATH", t.TempDir())
	_, err = remote.Resolve(ctx, cfg, "vm", 0, "")
	if err == nil || !strings.Contains(err.Error(), "Match host "+vm.Addr+" user root") || !strings.Contains(err.Error(), "install an OpenSSH client") {
		t.Errorf("library without ssh, Match: want an error naming Match and the fix, got %v", err)
	}
	noMatch := writeFile(t, filepath.Join(dir, "config-no-match"), fmt.Sprintf(`Include %[2]s/conf.d/*.conf

Host vm
	HostName %[1]s
	Port 2222
	IdentityFile %[2]s/keys/%%r@%%h-%%p
	IdentityFile ~/.ssh/vm-%%n
	UserKnownHostsFile %[2]s/kh-%%h ~/kh
	GlobalKnownHostsFile /etc/ssh/vm_known_hosts
	ProxyCommand nc %%h %%p
	ProxyJump ignored-after-ProxyCommand

Host j
	ProxyJump %%r@%%h-jump:2200,k

Host *
	User admin
	CertificateFile %[2]s/certs/%%r
	HashKnownHosts yes
	PasswordAuthentication no
`, vm.Addr, dir))
	for _, host := range []string{"vm", "j", "other"} {
		lib, err := remote.Resolve(ctx, noMatch, host, 0, "")
		if err != nil {
			t.Fatalf("library, Host %s: %v", host, err)
		}
		// The same through ssh -G, by its full path.
		t.Setenv("PATH", filepath.Dir(ssh))
		viaSSH, err := remote.Resolve(ctx, noMatch, host, 0, "")
		t.Setenv("PATH", t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if lib.Source != "ssh_config library" || viaSSH.Source != "ssh -G" {
			t.Fatalf("sources %q and %q", lib.Source, viaSSH.Source)
		}
		lib.Source, viaSSH.Source = "", ""
		lv, sv := reflect.ValueOf(lib), reflect.ValueOf(viaSSH)
		for i := 0; i < lv.NumField(); i++ {
			if !reflect.DeepEqual(lv.Field(i).Interface(), sv.Field(i).Interface()) {
				t.Errorf("library vs ssh -G, Host %s: %s: %#v, ssh -G %#v", host, lv.Type().Field(i).Name, lv.Field(i).Interface(), sv.Field(i).Interface())
			}
		}
	}
}
