package app

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"

	"github.com/spf13/cobra"
)

// Set by goreleaser's ldflags in a release build (.goreleaser.yaml); empty in a
// go build or go install, which report Go's build information instead.
var (
	Version = ""
	Commit  = ""
	Date    = "" // the commit's date: releases are reproducible, so no build clock
	Dirty   = "" // "true" when the release was built from a tree with changes
)

// BuildInfo is what `vm2mesh version -o json` prints (README, "Which vm2mesh").
type BuildInfo struct {
	Version   string `json:"version"`   // v1.2.3, a Go pseudo-version, or "dev"
	Commit    string `json:"commit"`    // the full git commit; "" when unknown
	Dirty     bool   `json:"dirty"`     // built from a tree with uncommitted changes
	Date      string `json:"date"`      // the commit's time, RFC 3339 UTC; "" when unknown
	GoVersion string `json:"goVersion"` // the Go toolchain that built it
	Platform  string `json:"platform"`  // GOOS/GOARCH
	Source    string `json:"source"`    // "release" (goreleaser) or "go build" (Go's build information)
}

// currentBuild is this binary's BuildInfo.
func currentBuild() BuildInfo {
	info, _ := debug.ReadBuildInfo()
	return buildInfo(info)
}

// buildInfo takes the release's ldflags when they are set, Go's build
// information (module version, vcs.revision, vcs.time, vcs.modified) otherwise.
func buildInfo(info *debug.BuildInfo) BuildInfo {
	b := BuildInfo{Version: "dev", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Source: "go build"}
	if Version != "" || Commit != "" {
		b.Source = "release"
		if Version != "" {
			b.Version = Version
		}
		b.Commit, b.Date = Commit, Date
		b.Dirty, _ = strconv.ParseBool(Dirty)
		return b
	}
	if info == nil {
		return b
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		b.Version = v // v1.2.3 from go install, a pseudo-version (+dirty) from go build in a checkout
	}
	if info.GoVersion != "" {
		b.GoVersion = info.GoVersion
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.Date = s.Value
		case "vcs.modified":
			b.Dirty = s.Value == "true"
		}
	}
	return b
}

// Line is the one line `vm2mesh version` prints:
// vm2mesh v1.2.3 (commit 0a628fa, 2026-11-22T04:50:11Z, go1.26.8 linux/amd64)
func (b BuildInfo) Line() string {
	commit := "commit unknown"
	if b.Commit != "" {
		commit = "commit " + short(b.Commit)
		if b.Dirty {
			commit += " with uncommitted changes"
		}
	}
	date := ""
	if b.Date != "" {
		date = ", " + b.Date
	}
	return fmt.Sprintf("vm2mesh %s (%s%s, %s %s)", b.Version, commit, date, b.GoVersion, b.Platform)
}

func short(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}

func newVersion(stdio IO) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print vm2mesh's version, commit and date",
		Long: `Print vm2mesh's version, the git commit it was built from and that commit's
date: from the release's build, or from Go's build information for a go build or
go install. -o json prints them as one JSON object (fields in README.md).`,
		Args: noArgs("vm2mesh version prints the version"),
		RunE: func(cmd *cobra.Command, args []string) error {
			b := currentBuild()
			switch output {
			case "", "text":
				_, err := fmt.Fprintln(stdio.Out, b.Line())
				return err
			case "json":
				enc := json.NewEncoder(stdio.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(b)
			default:
				return fmt.Errorf("--output %q is not a format vm2mesh version prints; use -o text or -o json", output)
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text, or json for scripts")
	_ = cmd.RegisterFlagCompletionFunc("output", completeValues("text\tone line", "json\tone JSON object"))
	return cmd
}
