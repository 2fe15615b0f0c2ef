package steps

import (
	"slices"
	"testing"
)

// curl reads no URL as an option, and follows no redirect to another protocol.
func TestCurlArgvEndsOptionsBeforeTheURL(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		env := &Env{Settings: Defaults()}
		env.Settings.VM.AllowInsecurePackageURL = insecure
		argv := curlArgv(env, "/tmp/x/istio-sidecar.deb", "-K/etc/shadow")
		if n := len(argv); argv[n-2] != "--" || argv[n-1] != "-K/etc/shadow" {
			t.Errorf("argv %q: the URL does not follow --", argv)
		}
		want := "=https"
		if insecure {
			want = "=http,https"
		}
		if i := slices.Index(argv, "--proto"); i < 0 || argv[i+1] != want {
			t.Errorf("argv %q: --proto %s", argv, want)
		}
		if i := slices.Index(argv, "--proto-redir"); i < 0 || argv[i+1] != want {
			t.Errorf("argv %q: --proto-redir %s", argv, want)
		}
	}
}
