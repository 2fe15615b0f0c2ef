package vmconfig

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// istio-start.sh sources cluster.env as root (set -a; . cluster.env). A key is
// only ever an environment variable's name, and a value only what shellQuote
// makes, so that nothing in the file is run.

var envKey = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// checkEnvKeys refuses proxyMetadata keys that are not environment variable
// names: in cluster.env such a key would be a command for root.
func checkEnvKeys(env map[string]string) error {
	for k := range env {
		if !envKey.MatchString(k) {
			return fmt.Errorf("proxyMetadata key %q is not an environment variable name ([A-Z_][A-Z0-9_]*): istio-start.sh sources cluster.env as root, so vm2mesh does not write it; "+
				"fix the key in the mesh config's defaultConfig.proxyMetadata or the WorkloadGroup's %s annotation", k, ProxyConfigAnnotation)
		}
	}
	return nil
}

// CheckClusterEnv checks a cluster.env before it goes to the VM (it may have been
// edited since vm2mesh wrote it): every line a comment, blank, or KEY=value with
// an environment variable name and a value the shell takes as plain text (bare
// safe characters and single-quoted parts).
func CheckClusterEnv(data []byte) error {
	for i, line := range strings.Split(string(bytes.TrimRight(data, "\n")), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !envKey.MatchString(k) {
			return fmt.Errorf("cluster.env line %d: %q is not KEY=value with an environment variable name", i+1, line)
		}
		if !plainShellWord(v) {
			return fmt.Errorf("cluster.env line %d: the value of %s is not plain text to a shell (only letters, digits, _@%%+=:,./- and single-quoted parts): istio-start.sh sources the file as root", i+1, k)
		}
	}
	return nil
}

// plainShellWord: the shell reads v as one word of literal text. Bare parts are
// safe characters (a backslash escapes the next one, never the line's end),
// quoted parts are '...' or the "'" that shellQuote writes for a quote.
func plainShellWord(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(v[i+1:], '\'')
			if j < 0 {
				return false
			}
			i += j + 1
		case c == '"':
			if !strings.HasPrefix(v[i:], `"'"`) {
				return false
			}
			i += 2
		case c == '\\':
			if i+1 >= len(v) {
				return false
			}
			i++
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("_@%+=:,./-", c) >= 0:
		default:
			return false
		}
	}
	return true
}
