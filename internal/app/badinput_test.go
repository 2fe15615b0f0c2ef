package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// badEnv is one bad-input case's own directory tree: everything the case may
// touch is in it (HOME, workDir, known_hosts, the output directory), so it can
// be compared before and after.
type badEnv struct {
	dir, home, work, answers, out, wg, pkg, key, fifo, kubeconfig string
}

func newBadEnv(t *testing.T) *badEnv {
	t.Helper()
	dir := t.TempDir()
	e := &badEnv{
		dir:     dir,
		home:    filepath.Join(dir, "home"),
		work:    filepath.Join(dir, "work"),
		answers: filepath.Join(dir, "answers.yaml"),
		out:     filepath.Join(dir, "out"),
		wg:      filepath.Join(dir, "workloadgroup.yaml"),
		pkg:     filepath.Join(dir, "istio-sidecar.deb"),
		key:     filepath.Join(dir, "id_ed25519"),
		fifo:    filepath.Join(dir, "fifo"),
		// No API server answers there: a case that got past the checks fails
		// at the first request instead of changing a cluster, or (as root)
		// writing into a system directory when the workDir check is broken.
		kubeconfig: filepath.Join(dir, "kubeconfig"),
	}
	if err := os.MkdirAll(filepath.Join(e.home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string]string{
		e.pkg: "a stand-in package",
		e.key: "a stand-in key",
		e.kubeconfig: `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: bad-input, context: {cluster: c, user: u}}]
current-context: bad-input
`,
		e.wg: `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: demo, namespace: bad-input}
spec:
  metadata: {labels: {app: demo}}
  template: {serviceAccount: vm}
`,
	} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(e.fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *badEnv) expand(s string) string {
	return strings.NewReplacer("{dir}", e.dir, "{home}", e.home, "{work}", e.work, "{answers}", e.answers,
		"{out}", e.out, "{wg}", e.wg, "{pkg}", e.pkg, "{key}", e.key, "{fifo}", e.fifo,
		"{kubeconfig}", e.kubeconfig, "{up}", strings.Repeat("../", strings.Count(e.home, "/"))).Replace(s)
}

// writeAnswers writes the guide's answers (installIstio never, a manual gateway
// address, workDir in the case's tree) with top's lines replacing top-level
// keys; with vm, a VM block that passes every check (and is never dialed: each
// case fails first), with vm's lines replacing its keys.
func (e *badEnv) writeAnswers(t *testing.T, top, vm []string) {
	t.Helper()
	base := []string{
		"kubeconfig: {kubeconfig}", "installIstio: never", "gatewayAddress: 192.0.2.10", "namespace: bad-input",
		"app: demo", "serviceAccount: vm", "workDir: {work}", "tokenDuration: 3600",
	}
	lines := override(base, top)
	if vm != nil {
		lines = append(lines, "vm:")
		for _, l := range override([]string{
			// A refused loopback port: a case whose check regressed fails there,
			// and no attempt ever leaves the machine.
			"host: 127.0.0.1", "port: 1", "user: root", "identityFile: {key}", "sshConfig: {dir}/no-ssh-config",
			"knownHostsFile: {home}/.ssh/known_hosts", "package: {pkg}",
		}, vm) {
			lines = append(lines, "  "+l)
		}
	}
	if err := os.WriteFile(e.answers, []byte(e.expand(strings.Join(lines, "\n")+"\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// override replaces base's "key: value" lines by those of extra with the same
// key and appends the rest.
func override(base, extra []string) []string {
	out := slices.Clone(base)
	for _, x := range extra {
		key, _, _ := strings.Cut(x, ":")
		if i := slices.IndexFunc(out, func(l string) bool { k, _, _ := strings.Cut(l, ":"); return k == key }); i >= 0 {
			out[i] = x
		} else {
			out = append(out, x)
		}
	}
	return out
}

// treeState lists every file under the roots with its type, mode, size and
// content hash; a link's target is listed, never followed; a FIFO never read.
func treeState(t *testing.T, roots ...string) map[string]string {
	t.Helper()
	state := map[string]string{}
	describe := func(path string, info fs.FileInfo) string {
		d := fmt.Sprintf("%v %d", info.Mode(), info.Size())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			d += " -> " + target
		case info.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			d += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		return d
	}
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				state[path] = "unreadable: " + err.Error()
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			state[path] = describe(path, info)
			return nil
		})
	}
	// What a case that got through would have changed first: /etc/hosts by
	// generate -o /etc, a system directory's mode by making it 0700.
	for _, p := range []string{"/etc/hosts", "/etc/passwd", "/", "/etc", "/tmp", "/usr", "/var/lib"} {
		if info, err := os.Lstat(p); err == nil {
			if info.IsDir() {
				state[p] = info.Mode().String()
			} else {
				state[p] = describe(p, info)
			}
		}
	}
	return state
}

func diffStates(before, after map[string]string) []string {
	var diff []string
	for p, b := range before {
		if a, ok := after[p]; !ok {
			diff = append(diff, "removed "+p)
		} else if a != b {
			diff = append(diff, fmt.Sprintf("changed %s: %s -> %s", p, b, a))
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			diff = append(diff, "created "+p)
		}
	}
	slices.Sort(diff)
	return diff
}

// runBad runs vm2mesh with HOME in the case's tree and stdin from a string.
// A case never waits for a network: the deadline turns a dial into a failure.
func runBad(t *testing.T, e *badEnv, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = e.dir // where a relative path that got through would land, compared too
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &stdout, &stderr
	cmd.Env = append(os.Environ(), "HOME="+e.home, "KUBECONFIG="+filepath.Join(e.home, "no-kubeconfig"), "TERM=xterm")
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%v did not end within a minute: it waited for something", args)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

type badInput struct {
	name string
	// cmd is apply (the default: apply -f {answers} --yes), generate (generate
	// -f {wg} -o {out} --kubeconfig {kubeconfig}) or wizard (-f {answers}).
	cmd string
	// args replace the default command line when set; more are appended to it.
	args, more []string
	top, vm    []string // the answers file's lines (see writeAnswers); vm nil: no VM block
	raw        string   // the answers file's whole content, instead of top and vm
	stdin      string
	setup      func(t *testing.T, e *badEnv)
	want       []string // in stderr, {placeholders} expanded
}

func mkdir(path string, mode os.FileMode) func(*testing.T, *badEnv) {
	return func(t *testing.T, e *badEnv) {
		p := e.expand(path)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(path, data string, mode os.FileMode) func(*testing.T, *badEnv) {
	return func(t *testing.T, e *badEnv) {
		p := e.expand(path)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(target, path string) func(*testing.T, *badEnv) {
	return func(t *testing.T, e *badEnv) {
		p := e.expand(path)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(e.expand(target), p); err != nil {
			t.Fatal(err)
		}
	}
}

func both(fns ...func(*testing.T, *badEnv)) func(*testing.T, *badEnv) {
	return func(t *testing.T, e *badEnv) {
		for _, f := range fns {
			f(t, e)
		}
	}
}

const refusedWorkDir = "give a directory of its own for the VM's files"

// badInputs: every key of the answers file and every flag of apply, generate
// and the wizard's start, given wrong. Each must exit 1 with a message naming
// the key (or the cause) and the fix, before anything is contacted or changed.
var badInputs = []badInput{
	// Reading the answers file.
	{name: "apply without -f", args: []string{"apply", "--yes"}, want: []string{"expecting an answers file: -f answers.yaml"}},
	{name: "answers missing", args: []string{"apply", "-f", "{dir}/missing.yaml", "--yes"}, want: []string{"-f {dir}/missing.yaml: no such file or directory", "give the path of a readable file"}},
	{name: "answers is a directory", args: []string{"apply", "-f", "{dir}", "--yes"}, want: []string{"-f {dir}: a directory, not a regular file", "give a regular file, or - to read stdin"}},
	{name: "answers /dev/zero", args: []string{"apply", "-f", "/dev/zero", "--yes"}, want: []string{"-f /dev/zero: a character device, not a regular file", "give a regular file, or - to read stdin"}},
	{name: "answers FIFO", args: []string{"apply", "-f", "{fifo}", "--yes"}, want: []string{"-f {fifo}: a FIFO, not a regular file", "give a regular file, or - to read stdin"}},
	{name: "answers over 1 MiB", raw: "app: demo\n" + strings.Repeat("# padding to more than a MiB\n", 40000), want: []string{"-f {answers}:", "more than the 1048576 (1 MiB) vm2mesh reads", "give the right file"}},
	{name: "stdin over 1 MiB", args: []string{"apply", "-f", "-", "--yes"}, stdin: strings.Repeat("#", 1<<20+1), want: []string{"-f -: more than the 1048576 bytes (1 MiB)", "give the right file"}},
	{name: "stdin answers without --yes", args: []string{"apply", "-f", "-"}, stdin: "app: demo\n", want: []string{"read the answers from stdin, so it cannot ask there", "add --yes"}},
	{name: "stdin answers with an unknown key", args: []string{"apply", "-f", "-", "--yes"}, stdin: "colour: blue\n", want: []string{"answers (stdin): unknown key \"colour\" (line 1)", "see the README"}},
	{name: "second document", raw: "installIstio: auto\n---\ninstallIstio: never\n", want: []string{"a second YAML document starts at line 2", "remove the '---' and merge the keys"}},
	{name: "empty second document", raw: "app: demo\n---\n", want: []string{"a second YAML document", "an answers file is one document"}},
	{name: "broken second document", raw: "app: demo\n---\n[\n", want: []string{"after the first YAML document", "remove the '---' and what follows"}},
	{name: "YAML syntax", raw: "app: [demo\n", want: []string{"{answers}:", "fix the YAML"}},
	{name: "tab indentation", raw: "vm:\n\thost: vm1\n", want: []string{"{answers}:", "fix the YAML"}},
	{name: "unknown key", top: []string{"colour: blue"}, want: []string{`unknown key "colour"`, "see the README for the keys"}},
	{name: "unknown vm key", vm: []string{"hostname: vm1"}, want: []string{`unknown key "hostname"`, "see the README for the keys"}},
	{name: "password key", vm: []string{"password: hunter2"}, want: []string{`unknown key "password"`, "see the README for the keys"}},
	{name: "a list", raw: "- app: demo\n", want: []string{"cannot unmarshal !!seq", "fix the YAML"}},
	{name: "a scalar", raw: "demo\n", want: []string{"cannot unmarshal !!str", "fix the YAML"}},
	{name: "duplicate key", raw: "app: demo\napp: other\n", want: []string{`mapping key "app" already defined`, "fix the YAML"}},
	{name: "vm is a string", top: []string{"vm: vm1"}, want: []string{"cannot unmarshal !!str `vm1` into steps.VM", "fix the YAML"}},

	// Every key of the answers file.
	{name: "kubeconfig missing", top: []string{"kubeconfig: {dir}/no-such-kubeconfig"}, want: []string{"kubeconfig: {dir}/no-such-kubeconfig does not exist", "give the kubeconfig file"}},
	{name: "kubeconfig is a directory", top: []string{"kubeconfig: {dir}"}, want: []string{"kubeconfig: {dir} is a directory, not a regular file", "give the kubeconfig file"}},
	{name: "kubeconfig is a FIFO", top: []string{"kubeconfig: {fifo}"}, want: []string{"kubeconfig: {fifo} is a FIFO", "give the kubeconfig file"}},
	{name: "kubeconfig an option", top: []string{"kubeconfig: --insecure-skip-tls-verify"}, want: []string{"kubeconfig:", "would be read as an option", "write a path as ./"}},
	{name: "kubeconfig control character", top: []string{`kubeconfig: "a\x1bb"`}, want: []string{"kubeconfig: holds the control character U+001B", "retype the value"}},
	{name: "kubeContext unknown", top: []string{"kubeContext: prod"}, want: []string{`kubeContext: context "prod" is not in the kubeconfig: pick one of`}},
	{name: "kubeContext an option", top: []string{"kubeContext: -x"}, want: []string{"kubeContext:", "would be read as an option"}},
	{name: "kubeContext newline", top: []string{`kubeContext: "a\nb"`}, want: []string{"kubeContext: holds the control character U+000A", "retype"}},
	{name: "cluster empty", top: []string{`cluster: ""`}, want: []string{"cluster: must not be empty (the guide's default is Kubernetes)"}},
	{name: "cluster not a label", top: []string{"cluster: my cluster"}, want: []string{`cluster: "my cluster" is not usable as a label value`, "alphanumeric"}},
	{name: "clusterNetwork alone", top: []string{"clusterNetwork: kube-network"}, want: []string{"vmNetwork: set clusterNetwork and vmNetwork together"}},
	{name: "clusterNetwork not a label", top: []string{"clusterNetwork: kube/network", "vmNetwork: vm-network"}, want: []string{`clusterNetwork: "kube/network" is not usable as a label value`, "alphanumeric"}},
	{name: "meshID empty", top: []string{`meshID: ""`}, want: []string{"meshID: must not be empty (the guide's default is mesh1)"}},
	{name: "meshID not a label", top: []string{"meshID: mesh#1"}, want: []string{`meshID: "mesh#1" is not usable as a label value`, "alphanumeric"}},
	{name: "revision upper case", top: []string{"revision: Canary"}, want: []string{`revision: "Canary" is not a valid name`, "lower case"}},
	{name: "revision an option", top: []string{"revision: -x"}, want: []string{`revision: "-x" is not a valid name`, "must start and end with an alphanumeric"}},
	{name: "installIstio unknown", top: []string{"installIstio: sometimes"}, want: []string{`installIstio: "sometimes" must be auto, always or never`}},
	{name: "installIstio empty", top: []string{`installIstio: ""`}, want: []string{`installIstio: "" must be auto, always or never`}},
	{name: "istioctl missing", top: []string{"istioctl: {dir}/bin/istioctl"}, want: []string{"istioctl: {dir}/bin/istioctl does not exist", "give the path of istioctl"}},
	{name: "istioctl not executable", top: []string{"istioctl: {pkg}"}, want: []string{"istioctl: {pkg} is not executable (chmod +x it)"}},
	{name: "istioctl a directory", top: []string{"istioctl: {dir}/"}, want: []string{"istioctl: {dir}/ is a directory, not a program", "give the path of istioctl"}},
	{name: "istioctl not on PATH", top: []string{"istioctl: istioctl-9.9"}, want: []string{`istioctl: "istioctl-9.9" is not on PATH`, "give the path of istioctl"}},
	{name: "istioctl an option", top: []string{"istioctl: -istioctl"}, want: []string{"istioctl:", "would be read as an option"}},
	{name: "istioNamespace empty", top: []string{`istioNamespace: ""`}, want: []string{"istioNamespace: must not be empty", "give a lower-case name"}},
	{name: "istioNamespace not a label", top: []string{"istioNamespace: Istio_System"}, want: []string{`istioNamespace: "Istio_System" is not a valid name`, "lower case"}},
	{name: "app upper case", top: []string{"app: Demo"}, want: []string{`app: "Demo" is not a valid name`, "lower case"}},
	{name: "app empty", top: []string{`app: ""`}, want: []string{"app: must not be empty", "give a lower-case name"}},
	{name: "app too long", top: []string{"app: " + strings.Repeat("a", 64)}, want: []string{"app:", "must be no more than 63 characters"}},
	{name: "namespace an option", top: []string{"namespace: -vm"}, want: []string{`namespace: "-vm" is not a valid name`}},
	{name: "namespace with a dot", top: []string{"namespace: vm.ns"}, want: []string{`namespace: "vm.ns" is not a valid name`}},
	{name: "serviceAccount with a space", top: []string{"serviceAccount: vm sa"}, want: []string{`serviceAccount: "vm sa" is not a valid name`}},
	{name: "serviceAccount empty", top: []string{`serviceAccount: ""`}, want: []string{"serviceAccount: must not be empty", "give a lower-case name"}},
	{name: "vmNetwork alone", top: []string{"vmNetwork: vm-network"}, want: []string{"vmNetwork: set clusterNetwork and vmNetwork together", "or leave both empty"}},
	{name: "vmNetwork not a label", top: []string{"clusterNetwork: kube-network", "vmNetwork: vm network"}, want: []string{`vmNetwork: "vm network" is not usable as a label value`}},
	{name: "workDir /", top: []string{"workDir: /"}, want: []string{"workDir: / is a system directory", refusedWorkDir}},
	{name: "workDir /etc", top: []string{"workDir: /etc"}, want: []string{"workDir: /etc is a system directory", "one named hosts", refusedWorkDir}},
	{name: "workDir ~/../../etc", top: []string{"workDir: ~/{up}etc"}, want: []string{"workDir: ~/", "is a system directory", refusedWorkDir}},
	{name: "workDir /usr", top: []string{"workDir: /usr"}, want: []string{"workDir: /usr is a system directory"}},
	{name: "workDir /var/lib", top: []string{"workDir: /var/lib"}, want: []string{"workDir: /var/lib is a system directory"}},
	{name: "workDir /boot", top: []string{"workDir: /boot"}, want: []string{"workDir: /boot is a system directory"}},
	{name: "workDir /tmp", top: []string{"workDir: /tmp"}, want: []string{"workDir: /tmp is a system directory"}},
	{name: "workDir /root", top: []string{"workDir: /root"}, want: []string{"workDir: /root is a system directory"}},
	{name: "workDir under /proc", top: []string{"workDir: /proc/self/vm2mesh"}, want: []string{"workDir: /proc/self/vm2mesh is under /proc", refusedWorkDir}},
	{name: "workDir under /sys", top: []string{"workDir: /sys/vm2mesh"}, want: []string{"is under /sys"}},
	{name: "workDir the home directory", top: []string{`workDir: "~"`}, want: []string{"workDir: ~ is your home directory", refusedWorkDir}},
	{name: "workDir null", top: []string{"workDir: ~"}, want: []string{"workDir: has no value (line ", `quoted "~" for the home directory`}},
	{name: "vm.host null", vm: []string{"host:"}, want: []string{"vm.host: has no value", "remove the key for the default"}},
	{name: "workDir a parent of home", top: []string{"workDir: {dir}"}, want: []string{"workDir: {dir} is a parent of your home directory", refusedWorkDir}},
	{name: "workDir a link to /etc", top: []string{"workDir: {dir}/etc-link"}, setup: symlink("/etc", "{dir}/etc-link"), want: []string{"workDir: {dir}/etc-link is a system directory"}},
	{name: "workDir someone else's files", top: []string{"workDir: {work}"}, setup: writeFile("{work}/notes.txt", "mine", 0o600), want: []string{"workDir: {work} already holds files vm2mesh did not write (notes.txt)", "set allowExistingWorkDir: true"}},
	{name: "workDir someone else's files, open", top: []string{"workDir: {work}"}, setup: both(writeFile("{work}/a", "", 0o644), writeFile("{work}/b", "", 0o644), writeFile("{work}/c", "", 0o644), writeFile("{work}/d", "", 0o644), mkdir("{work}", 0o755)), want: []string{"(a, b, c, ...)", "allowExistingWorkDir"}},
	{name: "workDir a file", top: []string{"workDir: {pkg}"}, want: []string{"workDir: {pkg} is a file, not a directory", refusedWorkDir}},
	{name: "workDir under a file", top: []string{"workDir: {pkg}/work"}, want: []string{"{pkg} is a file, not a directory, so {pkg}/work cannot be made"}},
	{name: "workDir hosts a link", top: []string{"workDir: {work}"}, setup: symlink("/etc/hosts", "{work}/hosts"), want: []string{"hosts (a symbolic link)", "remove it"}},
	{name: "workDir hosts a link even when allowed", top: []string{"workDir: {work}", "allowExistingWorkDir: true"}, setup: symlink("/etc/hosts", "{work}/hosts"), want: []string{"hosts (a symbolic link)", "regular files only"}},
	{name: "workDir /etc even when allowed", top: []string{"workDir: /etc", "allowExistingWorkDir: true"}, want: []string{"workDir: /etc is a system directory"}},
	{name: "workDir empty", top: []string{`workDir: ""`}, want: []string{"workDir: must not be empty", "give a directory"}},
	{name: "workDir control character", top: []string{`workDir: "work\x00"`}, want: []string{"workDir: holds the control character U+0000"}},
	{name: "workDir open, another key bad", top: []string{"workDir: {work}", "app: Demo"}, setup: both(writeFile("{work}/cluster.env", "", 0o644), mkdir("{work}", 0o755)), want: []string{`app: "Demo" is not a valid name`}},
	{name: "autoregister not a bool", top: []string{"autoregister: yes please"}, want: []string{"cannot unmarshal !!str `yes please` into bool", "fix the YAML"}},
	{name: "tokenDuration negative", top: []string{"tokenDuration: -5"}, want: []string{"tokenDuration: -5 is negative", "give the token lifetime in seconds"}},
	{name: "tokenDuration short", top: []string{"tokenDuration: 60"}, want: []string{"tokenDuration: 60 seconds is shorter than the API server issues", "give 600 or more"}},
	{name: "tokenDuration long", top: []string{"tokenDuration: 1099511627776"}, want: []string{"tokenDuration: 1099511627776 seconds is too long", "give at most"}},
	{name: "tokenDuration with a unit", top: []string{"tokenDuration: 1h"}, want: []string{"cannot unmarshal !!str `1h` into int64", "fix the YAML"}},
	{name: "captureDNS a number", top: []string{"captureDNS: 3"}, want: []string{"cannot unmarshal !!int `3` into bool", "fix the YAML"}},
	{name: "gatewayAddress not a host", top: []string{"gatewayAddress: not_a_host!"}, want: []string{`gatewayAddress: "not_a_host!" is neither an IP address nor a host name`, "give the east-west gateway's address"}},
	{name: "gatewayAddress with a port", top: []string{"gatewayAddress: 192.0.2.10:15443"}, want: []string{"gatewayAddress:", "neither an IP address nor a host name"}},
	{name: "allowExistingWorkDir not a bool", top: []string{"allowExistingWorkDir: sure"}, want: []string{"into bool", "fix the YAML"}},
	{name: "vm.host shell", vm: []string{"host: 'vm1; reboot'"}, want: []string{`vm.host: "vm1; reboot" has ';'`, "give the VM's IP address, host name or ~/.ssh/config Host alias"}},
	{name: "vm.host command substitution", vm: []string{"host: '$(id)'"}, want: []string{`vm.host: "$(id)" has '$'`, "Host alias"}},
	{name: "vm.host backticks", vm: []string{"host: '`id`'"}, want: []string{"vm.host:", "has '`'", "Host alias"}},
	{name: "vm.host pipe", vm: []string{"host: 'vm|nc'"}, want: []string{`vm.host: "vm|nc" has '|'`}},
	{name: "vm.host ampersand", vm: []string{"host: 'vm&'"}, want: []string{`vm.host: "vm&" has '&'`}},
	{name: "vm.host space", vm: []string{"host: 'vm 1'"}, want: []string{`vm.host: "vm 1" has whitespace`}},
	{name: "vm.host tab", vm: []string{`host: "vm\t1"`}, want: []string{"vm.host: holds the control character U+0009", "retype"}},
	{name: "vm.host an option", vm: []string{"host: -oProxyCommand=id"}, want: []string{`vm.host: "-oProxyCommand=id" starts with '-'`, "Host alias"}},
	{name: "vm.host with a user", vm: []string{"host: root@vm1"}, want: []string{`vm.host: "root@vm1" holds a user; put "root" in vm.user`}},
	{name: "vm.host with a port", vm: []string{"host: vm1:2222"}, want: []string{`vm.host: "vm1:2222" holds a port; put "2222" in vm.port and "vm1" in vm.host`}},
	{name: "vm.host brackets", vm: []string{"host: '[2001:db8::1]'"}, want: []string{"vm.host:", "has '['", "':' only in an IPv6 address"}},
	{name: "vm.host too long", vm: []string{"host: " + strings.Repeat("a", 254)}, want: []string{"vm.host: is 254 characters long", "Host alias"}},
	{name: "vm.host not ASCII", vm: []string{"host: vm-ä"}, want: []string{`vm.host: "vm-ä" has 'ä'`}},
	{name: "vm.host zone", vm: []string{"host: 'fe80::1%eth0;id'"}, want: []string{"vm.host:", "which is no interface name"}},
	{name: "vm.port too big", vm: []string{"port: 70000"}, want: []string{"vm.port: 70000 is not a TCP port; give 1 to 65535"}},
	{name: "vm.port negative", vm: []string{"port: -22"}, want: []string{"vm.port: -22 is not a TCP port"}},
	{name: "vm.port a string", vm: []string{`port: "22"`}, want: []string{"cannot unmarshal !!str `22` into int", "fix the YAML"}},
	{name: "vm.user an option", vm: []string{"user: -oProxyCommand=id"}, want: []string{`vm.user: "-oProxyCommand=id" is not a user name`, "give the VM's login user"}},
	{name: "vm.user shell", vm: []string{"user: root;id"}, want: []string{`vm.user: "root;id" is not a user name`}},
	{name: "vm.user space", vm: []string{"user: 'a b'"}, want: []string{`vm.user: "a b" is not a user name`}},
	{name: "vm.identityFile missing", vm: []string{"identityFile: {dir}/id_missing"}, want: []string{"vm.identityFile: {dir}/id_missing does not exist; give the path of the SSH private key"}},
	{name: "vm.identityFile a directory", vm: []string{"identityFile: {dir}"}, want: []string{"vm.identityFile: {dir} is a directory, not a regular file"}},
	{name: "vm.identityFile a device", vm: []string{"identityFile: /dev/zero"}, want: []string{"vm.identityFile: /dev/zero is a character device", "give the path of the SSH private key"}},
	{name: "vm.identityFile in home, missing", vm: []string{"identityFile: ~/.ssh/id_rsa"}, want: []string{"vm.identityFile: ~/.ssh/id_rsa does not exist"}},
	{name: "vm.sshConfig a directory", vm: []string{"sshConfig: {dir}"}, want: []string{"vm.sshConfig: {dir} is a directory", "or leave vm.sshConfig empty"}},
	{name: "vm.sshConfig a FIFO", vm: []string{"sshConfig: {fifo}"}, want: []string{"vm.sshConfig: {fifo} is a FIFO"}},
	{name: "vm.knownHostsFile nowhere", vm: []string{"knownHostsFile: /nonexistent-vm2mesh/known_hosts"}, want: []string{"vm.knownHostsFile: /nonexistent-vm2mesh/known_hosts does not exist and its directory /nonexistent-vm2mesh neither", "create the directory"}},
	{name: "vm.knownHostsFile a directory", vm: []string{"knownHostsFile: {home}/.ssh"}, want: []string{"vm.knownHostsFile: {home}/.ssh is a directory", "give a known_hosts file"}},
	{name: "vm.knownHostsFile under a file", vm: []string{"knownHostsFile: {pkg}/known_hosts"}, want: []string{"vm.knownHostsFile:", "not a directory"}},
	{name: "vm.hostKeyFingerprint MD5", vm: []string{"hostKeyFingerprint: 'MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48'"}, want: []string{"vm.hostKeyFingerprint:", "is not an OpenSSH SHA256 fingerprint", "ssh-keygen -lf"}},
	{name: "vm.hostKeyFingerprint short", vm: []string{"hostKeyFingerprint: SHA256:abc"}, want: []string{"vm.hostKeyFingerprint:", "43 base64 characters"}},
	{name: "vm.hostKeyFingerprint not base64", vm: []string{"hostKeyFingerprint: 'SHA256:" + strings.Repeat("!", 43) + "'"}, want: []string{"vm.hostKeyFingerprint:", "ssh-keygen -lf"}},
	{name: "vm.acceptNewHostKey not a bool", vm: []string{"acceptNewHostKey: maybe"}, want: []string{"into bool", "fix the YAML"}},
	{name: "vm.passwordFile missing", vm: []string{"passwordFile: ~/pw"}, want: []string{"vm.passwordFile: ~/pw does not exist; give the path of a file holding the SSH password"}},
	{name: "vm.passwordFile a directory", vm: []string{"passwordFile: {dir}"}, want: []string{"vm.passwordFile: {dir} is a directory"}},
	{name: "vm.sudoPasswordFile a FIFO", vm: []string{"sudoPasswordFile: {fifo}"}, want: []string{"vm.sudoPasswordFile: {fifo} is a FIFO, not a regular file; give the path of a file holding the sudo password"}},
	{name: "vm.sudoPasswordFile missing", vm: []string{"sudoPasswordFile: {dir}/sudo"}, want: []string{"vm.sudoPasswordFile: {dir}/sudo does not exist"}},
	{name: "vm.package not a package", vm: []string{"package: {dir}/istio-sidecar.tar.gz"}, want: []string{"vm.package:", "is neither a .rpm nor a .deb", "give the path of Istio's istio-sidecar.rpm or istio-sidecar.deb"}},
	{name: "vm.package missing", vm: []string{"package: {dir}/istio-sidecar.rpm"}, want: []string{"vm.package: {dir}/istio-sidecar.rpm does not exist; give the path of Istio's istio-sidecar.rpm or .deb"}},
	{name: "vm.package a directory", vm: []string{"package: {dir}/pkg.deb"}, setup: mkdir("{dir}/pkg.deb", 0o700), want: []string{"vm.package: {dir}/pkg.deb is a directory, not a regular file"}},
	{name: "vm.package with ~", vm: []string{"package: ~/istio-sidecar.deb"}, want: []string{"vm.package: ~/istio-sidecar.deb does not exist (~ is not expanded here: write the full path)"}},
	{name: "vm.package and packageURL", vm: []string{"packageURL: https://example.com/istio-sidecar.deb"}, want: []string{"vm.package: give vm.package or vm.packageURL, not both"}},
	{name: "vm.packageURL file", vm: []string{"package: ''", "packageURL: file:///etc/shadow"}, want: []string{`vm.packageURL: "file:///etc/shadow" is a file: URL`, "give an https:// URL"}},
	{name: "vm.packageURL ftp", vm: []string{"package: ''", "packageURL: ftp://mirror/istio-sidecar.deb"}, want: []string{"vm.packageURL:", "is a ftp: URL", "give an https:// URL"}},
	{name: "vm.packageURL no scheme", vm: []string{"package: ''", "packageURL: mirror/istio-sidecar.deb"}, want: []string{"vm.packageURL:", "has no scheme", "give an https:// URL"}},
	{name: "vm.packageURL http", vm: []string{"package: ''", "packageURL: http://mirror/istio-sidecar.deb"}, want: []string{"vm.packageURL:", "plain http", "set vm.allowInsecurePackageURL: true"}},
	{name: "vm.packageURL an option", vm: []string{"package: ''", "packageURL: -ohttps://x/"}, want: []string{"vm.packageURL:", "starts with '-'"}},
	{name: "vm.packageURL space", vm: []string{"package: ''", "packageURL: 'https://x/a b.deb'"}, want: []string{"vm.packageURL:", "has whitespace", "%20"}},
	{name: "vm.packageURL quote", vm: []string{"package: ''", `packageURL: "https://x/a'$(id).deb"`}, want: []string{"vm.packageURL:", "which a URL does not hold"}},
	{name: "vm.packageURL backslash", vm: []string{"package: ''", `packageURL: 'https://x/a\b.deb'`}, want: []string{"vm.packageURL:", "which a URL does not hold"}},
	{name: "vm.packageURL credentials", vm: []string{"package: ''", "packageURL: https://user:secret@x/a.deb"}, want: []string{"vm.packageURL:", "holds credentials"}},
	{name: "vm.packageURL no server", vm: []string{"package: ''", "packageURL: https:///a.deb"}, want: []string{"vm.packageURL:", "names no server"}},
	{name: "vm.packageURL control character", vm: []string{"package: ''", `packageURL: "https://x/\x7f.deb"`}, want: []string{"vm.packageURL: holds the control character U+007F"}},
	{name: "vm.packageSHA256 not hex", vm: []string{"packageSHA256: " + strings.Repeat("g", 64)}, want: []string{"vm.packageSHA256:", "give exactly 64 hex digits"}},
	{name: "vm.packageSHA256 short", vm: []string{"packageSHA256: " + strings.Repeat("a", 63)}, want: []string{"vm.packageSHA256:", "exactly 64 hex digits"}},
	{name: "vm.packageSHA256 with spaces", vm: []string{"packageSHA256: ' " + strings.Repeat("a", 64) + "'"}, want: []string{"vm.packageSHA256:", "exactly 64 hex digits"}},
	{name: "vm.allowInsecurePackageURL not a bool", vm: []string{"allowInsecurePackageURL: 2"}, want: []string{"into bool", "fix the YAML"}},
	{name: "vm.allowUnverifiedPackage not a bool", vm: []string{"allowUnverifiedPackage: 2"}, want: []string{"into bool", "fix the YAML"}},
	{name: "vm.internalIP", vm: []string{"internalIP: 10.0.0"}, want: []string{`vm.internalIP: "10.0.0" is not an IP address`, "ISTIO_SVC_IP"}},
	{name: "vm.agentWait negative", vm: []string{"agentWait: -1"}, want: []string{"vm.agentWait: must not be negative", "default 90"}},
	{name: "vm.agentWait a year", vm: []string{"agentWait: 31536000"}, want: []string{"vm.agentWait: 31536000 seconds is more than a day"}},
	{name: "VM half without host", more: []string{"--only", "vm"}, want: []string{"vm.host: must be set to the VM's address", "vm.package: give the istio-sidecar"}},
	{name: "VM half without package", vm: []string{"package: ''"}, want: []string{"vm.package: give the istio-sidecar .rpm or .deb (vm.package) or a URL"}},
	{name: "VM half without the five files", vm: []string{}, more: []string{"--only", "vm"}, want: []string{"workDir: {work} lacks cluster.env, mesh.yaml, root-cert.pem, istio-token, hosts", "vm2mesh apply --only cluster"}},

	// apply's flags.
	{name: "apply --only", more: []string{"--only", "both"}, want: []string{`--only takes cluster or vm, not "both"`}},
	{name: "apply --kubeconfig missing", more: []string{"--kubeconfig", "{dir}/kc"}, want: []string{"--kubeconfig: {dir}/kc does not exist", "give the kubeconfig file"}},
	{name: "apply --kubeconfig a directory", more: []string{"--kubeconfig", "{dir}"}, want: []string{"--kubeconfig: {dir} is a directory"}},
	{name: "apply --context", more: []string{"--context", "prod"}, want: []string{`--context: context "prod" is not in the kubeconfig: pick one of`}},
	{name: "apply without --yes", args: []string{"apply", "-f", "{answers}"}, want: []string{"add --yes to confirm, or --dry-run", "stdin is not a terminal"}},
	{name: "apply --dry-run, bad key", top: []string{"app: Demo"}, more: []string{"--dry-run"}, want: []string{`app: "Demo" is not a valid name`}},
	{name: "apply --password", more: []string{"--password", "hunter2"}, want: []string{"unknown flag: --password", "no password on the command line", "vm.passwordFile"}},
	{name: "apply --sudo-password", more: []string{"--sudo-password=x"}, want: []string{"unknown flag: --sudo-password", "vm.sudoPasswordFile"}},
	{name: "apply --yes=maybe", more: []string{"--yes=maybe"}, want: []string{`invalid argument "maybe"`, "see vm2mesh apply --help"}},
	{name: "apply an argument", more: []string{"answers.yaml"}, want: []string{`vm2mesh apply takes no arguments, not "answers.yaml"`, "-f answers.yaml"}},
	{name: "apply -f empty", args: []string{"apply", "-f", "", "--yes"}, want: []string{"expecting an answers file"}},

	// generate's flags.
	{name: "generate without -f", cmd: "generate", args: []string{"generate", "-o", "{out}"}, want: []string{"expecting a WorkloadGroup: -f workloadgroup.yaml, or --name NAME -n NAMESPACE"}},
	{name: "generate without -o", cmd: "generate", args: []string{"generate", "-f", "{wg}"}, want: []string{"expecting an output directory: -o DIR"}},
	{name: "generate -f missing", cmd: "generate", args: []string{"generate", "-f", "{dir}/wg.yaml", "-o", "{out}"}, want: []string{"-f {dir}/wg.yaml: no such file or directory", "give the path of a readable file"}},
	{name: "generate -f /dev/zero", cmd: "generate", args: []string{"generate", "-f", "/dev/zero", "-o", "{out}"}, want: []string{"-f /dev/zero: a character device", "give a regular file"}},
	{name: "generate -f FIFO", cmd: "generate", args: []string{"generate", "-f", "{fifo}", "-o", "{out}"}, want: []string{"-f {fifo}: a FIFO", "give a regular file"}},
	{name: "generate -f not a WorkloadGroup", cmd: "generate", args: []string{"generate", "-f", "{pkg}", "-o", "{out}"}, want: []string{"{pkg}:", "give a WorkloadGroup manifest"}},
	{name: "generate -o /", cmd: "generate", args: []string{"generate", "-f", "{wg}", "-o", "/"}, want: []string{"-o: / is a system directory", refusedWorkDir}},
	{name: "generate -o /etc", cmd: "generate", args: []string{"generate", "-f", "{wg}", "-o", "/etc"}, want: []string{"-o: /etc is a system directory", "one named hosts"}},
	{name: "generate -o /etc --force", cmd: "generate", more: []string{"-o", "/etc", "--force"}, want: []string{"-o: /etc is a system directory"}},
	{name: "generate -o ~/../../etc", cmd: "generate", more: []string{"-o", "~/{up}etc"}, want: []string{"is a system directory"}},
	{name: "generate -o home", cmd: "generate", more: []string{"-o", "{home}"}, want: []string{"-o: {home} is your home directory"}},
	{name: "generate -o someone else's", cmd: "generate", setup: writeFile("{out}/report.pdf", "x", 0o600), want: []string{"-o: {out} already holds files vm2mesh did not write (report.pdf)", "add --force"}},
	{name: "generate -o a file", cmd: "generate", more: []string{"-o", "{pkg}"}, want: []string{"-o: {pkg} is a file, not a directory"}},
	{name: "generate -o a link to /etc", cmd: "generate", more: []string{"-o", "{dir}/etc-link"}, setup: symlink("/etc", "{dir}/etc-link"), want: []string{"-o: {dir}/etc-link is a system directory"}},
	{name: "generate -o hosts a link", cmd: "generate", setup: symlink("/etc/hosts", "{out}/hosts"), want: []string{"-o:", "hosts (a symbolic link)", "remove it"}},
	{name: "generate -o open, another flag bad", cmd: "generate", more: []string{"--ingressIP", "gw"}, setup: both(writeFile("{out}/hosts", "", 0o644), mkdir("{out}", 0o755)), want: []string{"--ingressIP:"}},
	{name: "generate --ingressIP", cmd: "generate", more: []string{"--ingressIP", "gateway.example"}, want: []string{`--ingressIP: "gateway.example" is not an IP address; give the east-west gateway's IP address`}},
	{name: "generate --internalIP", cmd: "generate", more: []string{"--internalIP", "10.0.0"}, want: []string{`--internalIP: "10.0.0" is not an IP address; give the VM's internal IP address`}},
	{name: "generate --externalIP", cmd: "generate", more: []string{"--externalIP", "$(id)"}, want: []string{`--externalIP: "$(id)" is not an IP address`}},
	{name: "generate both IPs", cmd: "generate", more: []string{"--internalIP", "10.0.0.1", "--externalIP", "192.0.2.1"}, want: []string{"mutually exclusive; give one of them"}},
	{name: "generate --tokenDuration 0", cmd: "generate", more: []string{"--tokenDuration", "0"}, want: []string{"--tokenDuration must be a positive number of seconds"}},
	{name: "generate --tokenDuration 60", cmd: "generate", more: []string{"--tokenDuration", "60"}, want: []string{"--tokenDuration: 60 seconds is shorter than the API server issues; give at least 600"}},
	{name: "generate --tokenDuration 1h", cmd: "generate", more: []string{"--tokenDuration", "1h"}, want: []string{`invalid argument "1h"`, "see vm2mesh generate --help"}},
	{name: "generate --revision", cmd: "generate", more: []string{"--revision", "Canary"}, want: []string{`--revision: "Canary" is not a valid name`}},
	{name: "generate -i", cmd: "generate", more: []string{"-i", "istio system"}, want: []string{`--istioNamespace: "istio system" is not a valid name`}},
	{name: "generate --clusterID", cmd: "generate", more: []string{"--clusterID", "my cluster"}, want: []string{`--clusterID: "my cluster" is not usable as a cluster ID`}},
	{name: "generate --ingressService", cmd: "generate", more: []string{"--ingressService", "gw.istio.system"}, want: []string{`--ingressService: "gw.istio.system" is not SERVICE or SERVICE.NAMESPACE`}},
	{name: "generate --wait-root-cert", cmd: "generate", more: []string{"--wait-root-cert", "-1s"}, want: []string{"--wait-root-cert: -1s is negative"}},
	{name: "generate --kubeconfig missing", cmd: "generate", args: []string{"generate", "-f", "{wg}", "-o", "{out}", "--kubeconfig", "{dir}/kc"}, want: []string{"--kubeconfig: {dir}/kc does not exist"}},
	{name: "generate --context", cmd: "generate", more: []string{"--context", "prod"}, want: []string{`--context: context "prod" is not in the kubeconfig`}},
	{name: "generate --capture-dns", cmd: "generate", more: []string{"--capture-dns=maybe"}, want: []string{`invalid argument "maybe"`, "see vm2mesh generate --help"}},
	{name: "generate --autoregister", cmd: "generate", more: []string{"--autoregister=2"}, want: []string{`invalid argument "2"`, "--help"}},
	{name: "generate an argument", cmd: "generate", more: []string{"extra"}, want: []string{`vm2mesh generate takes no arguments, not "extra"`, "-f (or --name and -n) and the output directory with -o"}},
	{name: "generate --password", cmd: "generate", more: []string{"--password=x"}, want: []string{"unknown flag: --password", "no password on the command line"}},

	// The wizard's start, without a terminal.
	{name: "wizard -f missing", cmd: "wizard", args: []string{"-f", "{dir}/missing.yaml"}, want: []string{"-f {dir}/missing.yaml: no such file or directory"}},
	{name: "wizard -f /dev/zero", cmd: "wizard", args: []string{"-f", "/dev/zero"}, want: []string{"-f /dev/zero: a character device", "give a regular file"}},
	{name: "wizard -f FIFO", cmd: "wizard", args: []string{"-f", "{fifo}"}, want: []string{"-f {fifo}: a FIFO"}},
	{name: "wizard -f -", cmd: "wizard", args: []string{"-f", "-"}, stdin: "app: demo\n", want: []string{"the wizard reads the terminal", "give the answers file's path"}},
	{name: "wizard bad key", cmd: "wizard", top: []string{"app: Demo"}, want: []string{`app: "Demo" is not a valid name`}},
	{name: "wizard unknown key", cmd: "wizard", top: []string{"colour: blue"}, want: []string{`unknown key "colour"`}},
	{name: "wizard second document", cmd: "wizard", raw: "app: demo\n---\napp: other\n", want: []string{"a second YAML document", "merge the keys"}},
	{name: "wizard workDir /etc", cmd: "wizard", top: []string{"workDir: /etc"}, want: []string{"workDir: /etc is a system directory"}},
	{name: "wizard workDir someone else's", cmd: "wizard", setup: writeFile("{work}/x", "", 0o600), want: []string{"workDir: {work} already holds files", "allowExistingWorkDir: true"}},
	{name: "wizard vm.identityFile", cmd: "wizard", vm: []string{"identityFile: {dir}/nope"}, want: []string{"vm.identityFile: {dir}/nope does not exist"}},
	{name: "wizard vm.host", cmd: "wizard", vm: []string{"host: 'vm;id'"}, want: []string{`vm.host: "vm;id" has ';'`}},
	{name: "wizard --only", cmd: "wizard", more: []string{"--only", "everything"}, want: []string{`--only takes cluster or vm, not "everything"`}},
	{name: "wizard --only vm without files", cmd: "wizard", more: []string{"--only", "vm"}, want: []string{"workDir: {work} lacks cluster.env", "--only cluster"}},
	{name: "wizard --kubeconfig", cmd: "wizard", more: []string{"--kubeconfig", "{dir}/kc"}, want: []string{"--kubeconfig: {dir}/kc does not exist"}},
	{name: "wizard --context", cmd: "wizard", more: []string{"--context", "prod"}, want: []string{`--context: context "prod" is not in the kubeconfig: pick one of`}},
	{name: "wizard --log-file /etc/passwd", cmd: "wizard", more: []string{"--log-file", "/etc/passwd"}, want: []string{"--log-file: /etc/passwd is in /etc, a system directory", "./vm2mesh.log"}},
	{name: "wizard --log-file a directory", cmd: "wizard", more: []string{"--log-file", "{dir}"}, want: []string{"--log-file: {dir} is a directory, not a regular file", "./vm2mesh.log"}},
	{name: "wizard --log-file a device", cmd: "wizard", more: []string{"--log-file", "/dev/null"}, want: []string{"--log-file: /dev/null is a character device"}},
	{name: "wizard --log-file a FIFO", cmd: "wizard", more: []string{"--log-file", "{fifo}"}, want: []string{"--log-file: {fifo} is a FIFO"}},
	{name: "wizard --log-file nowhere", cmd: "wizard", more: []string{"--log-file", "{dir}/no/dir/log"}, want: []string{"--log-file: its directory {dir}/no/dir does not exist"}},
	{name: "wizard --log-file a link to /etc", cmd: "wizard", more: []string{"--log-file", "{dir}/log"}, setup: symlink("/etc/passwd", "{dir}/log"), want: []string{"--log-file: {dir}/log is in /etc"}},
	{name: "wizard no terminal", cmd: "wizard", want: []string{"the wizard needs an interactive terminal", "run `vm2mesh apply -f answers.yaml` instead"}},
	{name: "wizard unknown flag", cmd: "wizard", more: []string{"--yes"}, want: []string{"unknown flag: --yes", "see vm2mesh --help"}},
	{name: "wizard --password", cmd: "wizard", more: []string{"--password", "x"}, want: []string{"unknown flag: --password", "no password on the command line"}},
	{name: "wizard an argument", cmd: "wizard", more: []string{"aply"}, want: []string{`vm2mesh takes no arguments, not "aply"`, "the commands are apply, generate and version"}},
}

func TestBadInputIsRefusedBeforeAnythingChanges(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range badInputs {
		if seen[tc.name] {
			t.Fatalf("two cases named %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newBadEnv(t)
			if tc.raw != "" {
				if err := os.WriteFile(e.answers, []byte(tc.raw), 0o600); err != nil {
					t.Fatal(err)
				}
			} else {
				e.writeAnswers(t, tc.top, tc.vm)
			}
			if tc.setup != nil {
				tc.setup(t, e)
			}
			args := tc.args
			if args == nil {
				switch tc.cmd {
				case "", "apply":
					args = []string{"apply", "-f", "{answers}", "--yes"}
				case "generate":
					args = []string{"generate", "-f", "{wg}", "-o", "{out}", "--kubeconfig", "{kubeconfig}", "--clusterID", "Kubernetes"}
				case "wizard":
					args = []string{"-f", "{answers}"}
				}
			}
			args = append(slices.Clone(args), tc.more...)
			for i := range args {
				args[i] = e.expand(args[i])
			}
			before := treeState(t, e.dir)
			r := runBad(t, e, tc.stdin, args...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			for _, w := range tc.want {
				if w = e.expand(w); !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if diff := diffStates(before, treeState(t, e.dir)); len(diff) > 0 {
				t.Errorf("files changed:\n%s", strings.Join(diff, "\n"))
			}
		})
	}
	if n := len(badInputs); n < 120 {
		t.Errorf("%d bad-input cases; the issue asks for at least 120", n)
	}
}

// TestTrustIsNotGivenBeforeConsent: with acceptNewHostKey, apply without --yes
// and without a terminal to ask must refuse before it dials the VM, so no host
// key is remembered (the VM is a refused loopback port: a dial would say so).
func TestTrustIsNotGivenBeforeConsent(t *testing.T) {
	istioInstalled(t)
	e := newBadEnv(t)
	knownHosts := filepath.Join(e.home, ".ssh", "known_hosts")
	e.kubeconfig = cluster.Kubeconfig // a real API server: the run must stop before the VM all the same
	e.writeAnswers(t, nil, []string{"acceptNewHostKey: true", "knownHostsFile: " + knownHosts})
	start := time.Now()
	r := runBad(t, e, "", "apply", "-f", e.answers)
	if r.code != 1 || !strings.Contains(r.stderr, "add --yes to confirm, or --dry-run to see what it would do (stdin is not a terminal to ask)") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "vm:") || strings.Contains(r.stdout, "cluster:") {
		t.Errorf("it contacted something first:\n%s", r.stdout)
	}
	if _, err := os.Lstat(knownHosts); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("known_hosts: %v, want it not created", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v: it waited for the VM", d)
	}
}

// TestWorkDirOpenToOthersIsTightened: apply and generate make an existing work
// directory that others can read 0700 (it will hold a token) and say so.
func TestWorkDirOpenToOthersIsTightened(t *testing.T) {
	istioInstalled(t)
	e := newBadEnv(t)
	e.kubeconfig = cluster.Kubeconfig
	e.writeAnswers(t, []string{"namespace: tighten"}, nil)
	mkdir("{work}", 0o755)(t, e)
	r := runBad(t, e, "", "apply", "-f", e.answers, "--dry-run")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	want := "workDir " + e.work + " was mode 0755, open to group or others; it holds a token, so vm2mesh made it 0700"
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
	}
	if st, _ := os.Stat(e.work); st.Mode().Perm() != 0o700 {
		t.Errorf("workDir mode %v, want 0700", st.Mode().Perm())
	}

	// generate the same, once its checks passed (here the cluster then fails:
	// the namespace has no root cert; the directory is private all the same).
	mkdir("{out}", 0o750)(t, e)
	r = runBad(t, e, "", "generate", "-f", e.wg, "-o", e.out, "--kubeconfig", e.kubeconfig, "--clusterID", "Kubernetes")
	if !strings.Contains(r.stderr, "-o "+e.out+" was mode 0750") {
		t.Errorf("generate: exit %d\n%s", r.code, r.stderr)
	}
	if st, _ := os.Stat(e.out); st.Mode().Perm() != 0o700 {
		t.Errorf("-o mode %v, want 0700", st.Mode().Perm())
	}
}
