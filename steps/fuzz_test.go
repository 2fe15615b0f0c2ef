package steps_test

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vm2mesh/vm2mesh/steps"
)

// fuzzingOnly: the run is of fuzz targets alone (-run '^$' -fuzz F, as
// hack/test runs it, and the fuzzing workers it starts), which need no cluster.
func fuzzingOnly() bool {
	flag.Parse()
	get := func(name string) string {
		if f := flag.Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	return get("test.fuzzworker") == "true" || (get("test.fuzz") != "" && get("test.run") == "^$")
}

// FuzzParseAnswers: no answers file makes the parser or the checks panic, and
// settings it accepts validate again, also after being written out as YAML and
// read back. The seeds are in testdata/fuzz/FuzzParseAnswers.
func FuzzParseAnswers(f *testing.F) {
	f.Add([]byte("app: demo\nvm:\n  host: 203.0.113.10\n  package: ./istio-sidecar.rpm\n"))
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := steps.ParseAnswers("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml: ") {
				t.Fatalf("the error does not name the file: %v", err)
			}
			return
		}
		if errs := s.Validate(); len(errs) > 0 {
			t.Fatalf("accepted settings do not validate: %v", errs)
		}
		_ = s.ValidateVM()
		out, err := yaml.Marshal(s)
		if err != nil {
			t.Fatalf("accepted settings do not marshal: %v", err)
		}
		again, err := steps.ParseAnswers("again.yaml", out)
		if err != nil {
			t.Fatalf("accepted settings, written out, are refused: %v\n%s", err, out)
		}
		if again != s {
			t.Fatalf("accepted settings change when written out and read back:\n%+v\n%+v", s, again)
		}
		// The workDir check only reads; relative to a directory of the test's own.
		dir := s.WorkDir
		if !filepath.IsAbs(dir) && !strings.HasPrefix(dir, "~") {
			dir = filepath.Join(base, dir)
		}
		if _, err := steps.CheckWorkDir("workDir", dir, s.AllowExistingWorkDir, "force"); err != nil && !strings.HasPrefix(err.Error(), "workDir: ") {
			t.Fatalf("the workDir error does not name the key: %v", err)
		}
	})
}
