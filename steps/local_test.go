package steps_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/steps"
)

func mustWrite(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want one with %q", what, want)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q lacks %q", what, err, w)
		}
	}
}

func TestWorkDirRefusesSystemHomeAndForeignDirectories(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home", "me")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	tmp := t.TempDir()
	linkToEtc := filepath.Join(tmp, "etc-link")
	if err := os.Symlink("/etc", linkToEtc); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(tmp, "project")
	mustWrite(t, filepath.Join(foreign, "main.go"), "package main\n", 0o600)
	mustWrite(t, filepath.Join(foreign, "hosts"), "", 0o600)
	file := filepath.Join(tmp, "a-file")
	mustWrite(t, file, "x", 0o600)
	ownLink := filepath.Join(tmp, "own-link")
	if err := os.MkdirAll(ownLink, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hosts", filepath.Join(ownLink, "hosts")); err != nil {
		t.Fatal(err)
	}
	up := strings.Repeat("../", strings.Count(home, "/"))
	// A folder named as a fleet's is not a fleet's without saved progress in it.
	groupsFolder := filepath.Join(tmp, "project-with-groups")
	mustWrite(t, filepath.Join(groupsFolder, "groups", "admins.txt"), "x", 0o600)
	mustWrite(t, filepath.Join(groupsFolder, "README.md"), "x", 0o600)

	for _, tc := range []struct {
		dir  string
		want []string
	}{
		{"/", []string{"workDir: / is a system directory", "give a directory of its own"}},
		{"/etc", []string{"workDir: /etc is a system directory"}},
		{"/etc/", []string{"system directory"}},
		{"/usr/local/bin", []string{"system directory"}},
		{"/var/lib", []string{"system directory"}},
		{"/tmp", []string{"system directory"}},
		{"/proc/self", []string{"kernel and device files"}},
		{"/sys/kernel/new-dir", []string{"kernel and device files"}},
		{"/dev/shm/x", []string{"kernel and device files"}},
		{"~/" + up + "etc", []string{"system directory"}},
		{"~", []string{"your home directory"}},
		{home + "/", []string{"your home directory"}},
		{filepath.Dir(home), []string{"a parent of your home directory"}},
		{linkToEtc, []string{"system directory"}},
		{foreign, []string{"already holds files vm2mesh did not write (main.go)", "allowExistingWorkDir: true"}},
		{groupsFolder, []string{"already holds files vm2mesh did not write (README.md)"}},
		{file, []string{"not a directory"}},
		{filepath.Join(file, "sub"), []string{"is a file, not a directory", "cannot be made"}},
		{ownLink, []string{"hosts (a symbolic link)", "regular files only", "remove it"}},
	} {
		_, err := steps.CheckWorkDir("workDir", tc.dir, false, "set allowExistingWorkDir: true")
		wantErr(t, tc.dir, err, tc.want...)
	}
	// Allowed: a new directory, vm2mesh's own files, a directory with saved
	// progress, and a foreign one when asked for.
	own := filepath.Join(tmp, "own")
	for _, name := range []string{"cluster.env", "hosts", "hosts.bak", ".hosts.tmp-123", "workloadgroup.yaml", "plan.sh", "answers.yaml"} {
		mustWrite(t, filepath.Join(own, name), "", 0o600)
	}
	withState := filepath.Join(tmp, "with-state")
	mustWrite(t, steps.StatePath(withState), "{}", 0o600)
	mustWrite(t, filepath.Join(withState, "notes.txt"), "mine", 0o600)
	fleetDir := filepath.Join(tmp, "fleet")
	mustWrite(t, steps.StatePath(filepath.Join(fleetDir, steps.FleetVMsDir, "vm-1")), "{}", 0o600)
	mustWrite(t, filepath.Join(fleetDir, "notes.txt"), "mine", 0o600)
	for _, ok := range []string{filepath.Join(tmp, "new", "deeper"), own, withState, fleetDir, "~/vmintegration"} {
		if _, err := steps.CheckWorkDir("workDir", ok, false, "force"); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	if _, err := steps.CheckWorkDir("workDir", foreign, true, "force"); err != nil {
		t.Errorf("a foreign directory, allowed: %v", err)
	}
	if _, err := steps.CheckWorkDir("workDir", "/etc", true, "force"); err == nil {
		t.Error("allowExistingWorkDir let /etc through")
	}
	_, err := steps.CheckWorkDir("-o", "/etc", false, "add --force")
	wantErr(t, "-o /etc", err, "-o: /etc is a system directory")
}

func TestWorkDirOpenToOthersIsTightened(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "work")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := steps.CheckWorkDir("workDir", dir, false, "force")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o755 {
		t.Fatalf("the check changed the mode to %v", st.Mode().Perm())
	}
	warning, err := w.Tighten()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"workDir " + dir + " was mode 0755", "holds a token", "made it 0700"} {
		if !strings.Contains(warning, want) {
			t.Errorf("warning %q lacks %q", warning, want)
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("mode %v after Tighten, want 0700", st.Mode().Perm())
	}
	w, _ = steps.CheckWorkDir("workDir", dir, false, "force")
	if warning, err := w.Tighten(); warning != "" || err != nil {
		t.Errorf("a private directory: %q %v", warning, err)
	}
}

func TestAnswersReaderIsBoundedAndNeverBlocks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	mustWrite(t, big, "app: demo\n"+strings.Repeat("# padding\n", steps.MaxInputSize/10+1), 0o600)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := steps.LoadAnswers(ctx, fifo, nil)
		wantErr(t, "a FIFO", err, "-f "+fifo+": a FIFO, not a regular file", "give a regular file, or - to read stdin")
		_, err = steps.LoadAnswers(ctx, "/dev/zero", nil)
		wantErr(t, "/dev/zero", err, "a character device, not a regular file")
		_, err = steps.LoadAnswers(ctx, dir, nil)
		wantErr(t, "a directory", err, "a directory, not a regular file")
		_, err = steps.LoadAnswers(ctx, big, nil)
		wantErr(t, "a big file", err, "more than the 1048576 (1 MiB) vm2mesh reads")
		_, err = steps.LoadAnswers(ctx, filepath.Join(dir, "missing.yaml"), nil)
		wantErr(t, "a missing file", err, "no such file or directory", "give the path of a readable file")
		_, err = steps.LoadAnswers(ctx, "-", strings.NewReader(strings.Repeat("#", steps.MaxInputSize+1)))
		wantErr(t, "big stdin", err, "-f -: more than the 1048576 bytes (1 MiB)")
		s, err := steps.LoadAnswers(ctx, "-", strings.NewReader("app: from-stdin\n"))
		if err != nil || s.App != "from-stdin" {
			t.Errorf("-f -: %+v %v", s.App, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("reading the answers blocked")
	}

	// A stdin that never ends gives way to cancelling.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := steps.LoadAnswers(cctx, "-", r); err != context.DeadlineExceeded {
		t.Errorf("a stdin that never ends: %v, want the context's error", err)
	}
}

func TestAnswersSecondDocumentIsRefused(t *testing.T) {
	for _, y := range []string{"installIstio: auto\n---\ninstallIstio: never\n", "---\napp: demo\n---\n", "app: demo\n---\n- [\n"} {
		_, err := steps.ParseAnswers("answers.yaml", []byte(y))
		wantErr(t, y, err, "answers.yaml:", "an answers file is one document")
	}
	if _, err := steps.ParseAnswers("answers.yaml", []byte("---\ninstallIstio: never\n...\n")); err != nil {
		t.Errorf("one document with its markers: %v", err)
	}
}

func TestAnswersValuesCheckedBeforeContact(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		yaml string
		want []string
	}{
		{"vm: {host: 'vm; reboot'}", []string{"vm.host:", `has ';'`, "give the VM's IP address, host name or ~/.ssh/config Host alias"}},
		{"vm: {host: 'a b'}", []string{"vm.host:", "has whitespace"}},
		{"vm: {host: -oProxyCommand=sh}", []string{"vm.host:", "starts with '-'"}},
		{"vm: {host: root@vm1}", []string{"vm.host:", `put "root" in vm.user`}},
		{"vm: {host: 'vm1:2222'}", []string{"vm.host:", `put "2222" in vm.port`}},
		{"vm: {host: '$(id)'}", []string{"vm.host:", `has '$'`}},
		{"vm: {host: 'fe80::1%$(id)'}", []string{"vm.host:", "zone"}},
		{"vm: {user: '-oProxyCommand=x'}", []string{"vm.user:", "not a user name"}},
		{"vm: {package: ./istio-sidecar.tar.gz}", []string{"vm.package:", "neither a .rpm nor a .deb"}},
		{"vm: {packageURL: file:///etc/passwd}", []string{"vm.packageURL:", "file: URL", "give an https:// URL"}},
		{"vm: {packageURL: ftp://mirror/istio-sidecar.deb}", []string{"vm.packageURL:", "ftp: URL"}},
		{"vm: {packageURL: mirror/istio-sidecar.deb}", []string{"vm.packageURL:", "no scheme"}},
		{"vm: {packageURL: http://mirror/istio-sidecar.deb}", []string{"vm.packageURL:", "plain http", "vm.allowInsecurePackageURL: true"}},
		{"vm: {packageURL: -https://x/}", []string{"vm.packageURL:", "starts with '-'"}},
		{"vm: {packageURL: 'https://x/a b.deb'}", []string{"vm.packageURL:", "whitespace"}},
		{`vm: {packageURL: "https://x/a'.deb"}`, []string{"vm.packageURL:", `has '\''`}},
		{"vm: {packageURL: 'https://u:p@x/a.deb'}", []string{"vm.packageURL:", "credentials"}},
		{"vm: {packageURL: 'https:///a.deb'}", []string{"vm.packageURL:", "names no server"}},
		{"vm: {packageSHA256: " + strings.Repeat("g", 64) + "}", []string{"vm.packageSHA256:", "exactly 64 hex digits"}},
		{"vm: {packageSHA256: ' " + sum[:63] + "'}", []string{"vm.packageSHA256:"}},
		{"vm: {hostKeyFingerprint: 'SHA256:" + strings.Repeat("!", 43) + "'}", []string{"vm.hostKeyFingerprint:", "ssh-keygen -lf"}},
		{"workDir: \"a\\x07b\"", []string{"workDir:", "control character U+0007", "retype"}},
		{"kubeContext: \"a\\nb\"", []string{"kubeContext:", "control character"}},
		{"kubeContext: --insecure", []string{"kubeContext:", "read as an option"}},
		{"vm: {agentWait: 99999999}", []string{"vm.agentWait:", "more than a day"}},
	} {
		_, err := steps.ParseAnswers("answers.yaml", []byte(tc.yaml))
		wantErr(t, tc.yaml, err, tc.want...)
	}
	for _, ok := range []string{
		"vm: {host: 203.0.113.10}", "vm: {host: '2001:db8::1'}", "vm: {host: my-vm_1.example.com}", "vm: {host: 'fe80::1%eth0'}",
		"vm: {packageURL: https://x.example/istio/}", "vm: {packageURL: http://x/a.deb, allowInsecurePackageURL: true}",
		"vm: {packageSHA256: " + strings.ToUpper(sum) + "}", "vm: {user: ad.user@corp}",
		"vm: {hostKeyFingerprint: SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU}",
	} {
		if _, err := steps.ParseAnswers("answers.yaml", []byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestCheckLocalNamesMissingFiles(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	dir := t.TempDir()
	exe := filepath.Join(dir, "istioctl")
	mustWrite(t, exe, "#!/bin/sh\n", 0o755)
	notExe := filepath.Join(dir, "istioctl-not-exe")
	mustWrite(t, notExe, "", 0o644)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	mustWrite(t, kubeconfig, "apiVersion: v1\nkind: Config\ncontexts: [{name: dev, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: https://127.0.0.1:1}}]\ncurrent-context: dev\n", 0o600)
	pkg := filepath.Join(dir, "istio-sidecar.deb")
	mustWrite(t, pkg, "pkg", 0o600)
	settings := func(edit func(*steps.Settings)) steps.Settings {
		s := steps.Defaults()
		s.WorkDir = filepath.Join(dir, "work")
		s.Kubeconfig = kubeconfig
		s.VM.Host = "198.51.100.1"
		s.VM.Package = pkg
		edit(&s)
		return s
	}
	for _, tc := range []struct {
		name string
		edit func(*steps.Settings)
		o    k8s.Options
		only string
		want []string
	}{
		{"identity", func(s *steps.Settings) { s.VM.IdentityFile = filepath.Join(dir, "id_missing") }, k8s.Options{}, "", []string{"vm.identityFile:", "does not exist", "give the path of the SSH private key"}},
		{"identity is a dir", func(s *steps.Settings) { s.VM.IdentityFile = dir }, k8s.Options{}, "", []string{"vm.identityFile:", "a directory, not a regular file"}},
		{"password", func(s *steps.Settings) { s.VM.PasswordFile = "~/pw" }, k8s.Options{}, "", []string{"vm.passwordFile: ~/pw does not exist"}},
		{"sudo password", func(s *steps.Settings) { s.VM.SudoPasswordFile = "/dev/null" }, k8s.Options{}, "", []string{"vm.sudoPasswordFile:", "character device"}},
		{"package", func(s *steps.Settings) { s.VM.Package = "~/istio-sidecar.rpm" }, k8s.Options{}, "", []string{"vm.package:", "~ is not expanded here"}},
		{"ssh config", func(s *steps.Settings) { s.VM.SSHConfig = dir }, k8s.Options{}, "", []string{"vm.sshConfig:", "directory"}},
		{"known_hosts dir", func(s *steps.Settings) { s.VM.KnownHostsFile = "/nonexistent/dir/known_hosts" }, k8s.Options{}, "", []string{"vm.knownHostsFile:", "its directory /nonexistent/dir neither"}},
		{"istioctl", func(s *steps.Settings) { s.Istioctl = filepath.Join(dir, "nope") }, k8s.Options{}, "", []string{"istioctl:", "does not exist"}},
		{"istioctl not executable", func(s *steps.Settings) { s.Istioctl = notExe }, k8s.Options{}, "", []string{"istioctl:", "not executable"}},
		{"kubeconfig", func(s *steps.Settings) { s.Kubeconfig = filepath.Join(dir, "missing") }, k8s.Options{}, "", []string{"kubeconfig:", "does not exist"}},
		{"--kubeconfig", func(*steps.Settings) {}, k8s.Options{Kubeconfig: filepath.Join(dir, "missing")}, "", []string{"--kubeconfig:", "does not exist"}},
		{"--context", func(*steps.Settings) {}, k8s.Options{Context: "prod"}, "", []string{"--context:", `context "prod" is not in the kubeconfig: pick one of dev`}},
		{"kubeContext", func(s *steps.Settings) { s.KubeContext = "prod" }, k8s.Options{}, "", []string{"kubeContext:", "pick one of dev"}},
		{"no host", func(s *steps.Settings) { s.VM.Host = "" }, k8s.Options{}, steps.HalfVM, []string{"vm.host: must be set"}},
		{"--only vm without files", func(*steps.Settings) {}, k8s.Options{}, steps.HalfVM, []string{"workDir:", "lacks cluster.env", "--only cluster"}},
		{"--only", func(*steps.Settings) {}, k8s.Options{}, "both", []string{"--only takes cluster or vm"}},
	} {
		_, err := steps.CheckLocal(settings(tc.edit), tc.o, tc.only)
		wantErr(t, tc.name, err, tc.want...)
	}
	// All there; a known_hosts file still to be created under home.
	good := settings(func(s *steps.Settings) {
		s.Istioctl = exe
		s.VM.IdentityFile = pkg
		s.VM.KnownHostsFile = "~/.ssh/known_hosts"
		s.VM.SSHConfig = filepath.Join(dir, "no-ssh-config")
		s.KubeContext = "dev"
	})
	if _, err := steps.CheckLocal(good, k8s.Options{}, ""); err != nil {
		t.Error(err)
	}
	// The wizard's start does not need what its pages ask.
	start := settings(func(s *steps.Settings) { s.VM.Host, s.VM.Package = "", "" })
	if _, err := steps.CheckStart(start, k8s.Options{}, steps.HalfVM); err == nil || strings.Contains(err.Error(), "vm.host") {
		t.Errorf("the wizard's start: %v (want only the missing files of --only vm)", err)
	}
	if _, err := steps.CheckStart(start, k8s.Options{}, ""); err != nil {
		t.Errorf("the wizard's start: %v", err)
	}
}

func TestREADMEAnswersBlockParses(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README.md has no answers-file block")
	}
	s, err := steps.ParseAnswers("README.md", []byte(block))
	if err != nil {
		t.Fatal(err)
	}
	if s.AllowExistingWorkDir || s.VM.AllowInsecurePackageURL || s.VM.AllowUnverifiedPackage {
		t.Errorf("the README's waivers are not off: %+v", s)
	}
}
