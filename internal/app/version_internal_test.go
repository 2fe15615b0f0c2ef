package app

import (
	"runtime/debug"
	"strings"
	"testing"
)

// A release's ldflags win over Go's build information; without them the build
// information (module version, vcs.revision, vcs.time, vcs.modified) is used.
func TestBuildInfoSources(t *testing.T) {
	goBuild := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Version: "v0.0.0-20261122044337-0a628fac05bc+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0a628fac05bcf9c24a514c6983f6ae887433909e"},
			{Key: "vcs.time", Value: "2026-11-22T04:43:37Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	b := buildInfo(goBuild)
	if b.Source != "go build" || b.Commit != "0a628fac05bcf9c24a514c6983f6ae887433909e" || !b.Dirty || b.Date != "2026-11-22T04:43:37Z" || b.Version != goBuild.Main.Version {
		t.Errorf("from Go's build information: %+v", b)
	}
	if line := b.Line(); !strings.HasPrefix(line, "vm2mesh v0.0.0-20261122044337-0a628fac05bc+dirty (commit 0a628fa with uncommitted changes, 2026-11-22T04:43:37Z, go1.26.8 ") {
		t.Errorf("line: %q", line)
	}

	if b := buildInfo(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}); b.Version != "dev" || b.Commit != "" || !strings.Contains(b.Line(), "(commit unknown, ") {
		t.Errorf("without vcs information: %+v %q", b, b.Line())
	}
	if b := buildInfo(nil); b.Version != "dev" {
		t.Errorf("without build information: %+v", b)
	}

	Version, Commit, Date, Dirty = "v1.2.3", "1234567890abcdef1234567890abcdef12345678", "2026-11-01T10:00:00Z", "false"
	t.Cleanup(func() { Version, Commit, Date, Dirty = "", "", "", "" })
	b = buildInfo(goBuild)
	if b.Source != "release" || b.Version != "v1.2.3" || b.Commit != Commit || b.Dirty || b.Date != Date {
		t.Errorf("from the release's ldflags: %+v", b)
	}
	if line := b.Line(); !strings.HasPrefix(line, "vm2mesh v1.2.3 (commit 1234567, 2026-11-01T10:00:00Z, go") {
		t.Errorf("release line: %q", line)
	}
}
