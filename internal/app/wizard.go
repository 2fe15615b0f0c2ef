package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	tea "charm.land/bubbletea/v2"
	"golang.org/x/term"

	"github.com/vm2mesh/vm2mesh/steps"
	"github.com/vm2mesh/vm2mesh/ui"
)

type wizardOptions struct {
	answers, kubeconfig, kubeContext, only, logFile string
	limit                                           string
	parallel                                        int
}

// runWizard starts the TUI when there is a terminal for it, and otherwise says
// what to use instead (Bubble Tea would fail opening /dev/tty).
func runWizard(ctx context.Context, stdio IO, o wizardOptions) error {
	// The flags and the answers file are checked before the terminal: their
	// errors say exactly what to fix, and they hold for apply too.
	if err := steps.CheckOnly(o.only); err != nil {
		return err
	}
	if o.answers == "-" {
		return errors.New("-f -: the wizard reads the terminal, not answers from stdin; give the answers file's path, or run vm2mesh apply -f - --yes")
	}
	if o.parallel < 1 {
		return fmt.Errorf("--parallel %d: give how many VMs run at once, 1 or more (default %d)", o.parallel, steps.DefaultParallel)
	}
	// The one place the settings are decided: the picker shows, and the run
	// uses, --context over the answers file's kubeContext. A vms: file is a
	// fleet: its table of VMs replaces the settings pages.
	flags := steps.Flags{Kubeconfig: o.kubeconfig, Context: o.kubeContext}
	fleet, k8sOpts, err := loadFleet(ctx, stdio, o.answers, o.limit, flags)
	if err != nil {
		return err
	}
	s := fleet.Settings
	if err := checkLogFile(o.logFile); err != nil {
		return err
	}
	var warnings []string
	if fleet.Single {
		local, err := steps.CheckStart(s, k8sOpts, o.only)
		if err != nil {
			return err
		}
		if _, _, ok := terminals(stdio); ok {
			if warning, err := local.WorkDir.Tighten(); err != nil {
				return err
			} else if warning != "" {
				warnings = append(warnings, warning)
			}
		}
	} else {
		// Every VM's settings, each error named by its key, before the
		// terminal; the work directories are tightened only once it is there.
		run := &steps.FleetRun{Fleet: fleet, Only: o.only, K8s: k8sOpts}
		if err := run.Validate(); err != nil {
			return err
		}
		if _, _, ok := terminals(stdio); ok {
			if warnings, err = run.Check(); err != nil {
				return err
			}
		}
	}
	in, out, ok := terminals(stdio)
	if !ok {
		return errors.New("the wizard needs an interactive terminal (this is not one, or TERM=dumb): run `vm2mesh apply -f answers.yaml` instead (see README.md)")
	}
	for _, w := range warnings {
		fmt.Fprintf(stdio.Err, "vm2mesh: warning: %s\n", w)
	}
	uo := ui.Options{AskSettings: fleet.Single, Only: o.only, Parallel: o.parallel, Sources: ui.SettingsSources{Kubeconfig: steps.ExpandHome(s.Kubeconfig), SSHConfig: steps.ExpandHome(s.VM.SSHConfig)}}
	if !fleet.Single {
		uo.Fleet = &fleet
	}
	if o.logFile != "" {
		// What the engine does, appended; never a secret (ui's tracer).
		f, err := os.OpenFile(o.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("--log-file: %w", err)
		}
		defer f.Close()
		fmt.Fprintf(f, "%s vm2mesh %s wizard started\n", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), Version)
		uo.Log = f
	}
	m := ui.New(ctx, ui.RealEngine{K8s: k8sOpts, Only: o.only, Parallel: o.parallel}, s, uo)
	defer m.Close()
	_, err = tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out)).Run()
	switch {
	case errors.Is(err, tea.ErrProgramKilled):
		return context.Canceled // the signal's context ended the program: 130
	case err != nil:
		return err
	}
	return m.Outcome
}

// terminals are stdin and stdout when both are terminals a Bubble Tea program
// can use (not TERM=dumb).
func terminals(stdio IO) (in, out *os.File, ok bool) {
	in, inOK := stdio.In.(*os.File)
	out, outOK := stdio.Out.(*os.File)
	if !inOK || !outOK || !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(out.Fd())) || os.Getenv("TERM") == "dumb" {
		return nil, nil, false
	}
	return in, out, true
}

// checkLogFile checks --log-file before the wizard appends its debug log to it:
// a regular file, or a new one in an existing directory, and not in a system
// directory (appending to /etc/passwd as root would be no debug log). The
// places for logs and scratch files are fine.
func checkLogFile(path string) error {
	if path == "" {
		return nil
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("--log-file: "+format+"; give a file of your own for the debug log, such as ./vm2mesh.log", args...)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fail("%v", err)
	}
	var dir string
	if _, err := os.Lstat(abs); err == nil {
		real, err := filepath.EvalSymlinks(abs) // where the log would really go
		if err != nil {
			return fail("%s: %v", path, err)
		}
		st, err := os.Stat(real)
		if err != nil {
			return fail("%s: %v", path, err)
		}
		if !st.Mode().IsRegular() {
			return fail("%s is %s, not a regular file", path, steps.FileKind(st.Mode()))
		}
		dir = filepath.Dir(real)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fail("%s: %v", path, err)
	} else if dir, err = filepath.EvalSymlinks(filepath.Dir(abs)); err != nil {
		return fail("its directory %s does not exist", filepath.Dir(path))
	}
	if steps.IsSystemDir(dir) && !slices.Contains([]string{"/tmp", "/var/tmp", "/var/log"}, dir) {
		return fail("%s is in %s, a system directory", path, dir)
	}
	return nil
}
