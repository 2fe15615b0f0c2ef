package steps

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestResolveFlagsWinOverTheAnswersFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.yaml")
	if err := os.WriteFile(path, []byte("kubeContext: one\napp: web\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, o, err := Resolve(context.Background(), path, nil, Flags{Context: "two"})
	if err != nil {
		t.Fatal(err)
	}
	if s.KubeContext != "two" || o.Context != "two" || s.App != "web" || s.MeshID != "mesh1" {
		t.Errorf("resolved %+v, %+v", s, o)
	}
	s, _, err = Resolve(context.Background(), "", nil, Flags{})
	if err != nil || !reflect.DeepEqual(s, Defaults()) {
		t.Errorf("no answers, no flags: %+v, %v", s, err)
	}
}

func TestAnswersYAMLKeepsOnlyWhatDiffersAndReadsBackTheSame(t *testing.T) {
	s := Defaults()
	s.KubeContext, s.App, s.Autoregister, s.TokenDuration = "lab", "web", false, 7200
	s.VM.Host, s.VM.Port, s.VM.Package = "203.0.113.10", 2222, "./istio-sidecar.deb"
	data, err := s.AnswersYAML("made by a test\nsecond line")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{"# made by a test\n# second line\n", "kubeContext: lab\n", "app: web\n", "autoregister: false\n", "vm:\n  host: 203.0.113.10\n  port: 2222\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("lacks %q:\n%s", want, text)
		}
	}
	for _, not := range []string{"meshID", "namespace", "agentWait", "user:"} {
		if strings.Contains(text, not) {
			t.Errorf("has the default key %q:\n%s", not, text)
		}
	}
	if strings.Index(text, "kubeContext") > strings.Index(text, "app:") {
		t.Errorf("keys are not in the README's order:\n%s", text)
	}
	back, err := ParseAnswers("written", data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Errorf("read back %+v\nwant %+v", back, s)
	}
	empty, err := Defaults().AnswersYAML("defaults")
	if err != nil {
		t.Fatal(err)
	}
	if back, err := ParseAnswers("empty", empty); err != nil || !reflect.DeepEqual(back, Defaults()) {
		t.Errorf("all defaults: %q -> %+v, %v", empty, back, err)
	}
}

func TestSaveAnswersWritesAPrivateFileInTheWorkDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wd")
	s := Defaults()
	s.WorkDir, s.App = dir, "web"
	path, err := SaveAnswers(s, dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 || filepath.Base(path) != "answers.yaml" {
		t.Fatalf("%s: %v %v", path, st, err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "# Replay them headless: vm2mesh apply -f "+path) {
		t.Errorf("header:\n%s", data)
	}
}
