package safefile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vm2mesh/vm2mesh/internal/safefile"
)

func TestWriteKeepsWhatItReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	changed, err := safefile.Write(path, []byte("one\n"))
	if err != nil || !changed {
		t.Fatalf("first write: %v %v", changed, err)
	}
	if _, err := os.Stat(path + ".bak"); !os.IsNotExist(err) {
		t.Error("a backup of nothing was made")
	}
	changed, err = safefile.Write(path, []byte("one\n"))
	if err != nil || changed {
		t.Fatalf("same content: changed=%v %v", changed, err)
	}
	if _, err := safefile.Write(path, []byte("two\n")); err != nil {
		t.Fatal(err)
	}
	cur, _ := os.ReadFile(path)
	bak, _ := os.ReadFile(path + ".bak")
	if string(cur) != "two\n" || string(bak) != "one\n" {
		t.Errorf("current %q, backup %q", cur, bak)
	}
	for _, p := range []string{path, path + ".bak"} {
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", p, st.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 2 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestWriteTightensAnOpenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "istio-token")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := safefile.Write(path, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

func TestReplaceKeepsNoBackup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	for _, s := range []string{"a", "b"} {
		if err := safefile.Replace(path, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(path); string(b) != "b" {
		t.Errorf("content %q", b)
	}
	if _, err := os.Stat(path + ".bak"); !os.IsNotExist(err) {
		t.Error("Replace made a backup")
	}
}

func TestWriteRefusesALinkInsteadOfFollowingIt(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "system-hosts")
	if err := os.WriteFile(target, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "hosts")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := safefile.Write(link, []byte("127.0.0.1 localhost\n")); err == nil {
		t.Fatal("wrote through a symbolic link")
	}
	if _, err := safefile.Write(link, []byte("192.0.2.1 istiod\n")); err == nil {
		t.Fatal("replaced a symbolic link")
	}
	st, _ := os.Stat(target)
	b, _ := os.ReadFile(target)
	if st.Mode().Perm() != 0o644 || string(b) != "127.0.0.1 localhost\n" {
		t.Errorf("the link's target changed: %v %q", st.Mode(), b)
	}
}
