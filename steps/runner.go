package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vm2mesh/vm2mesh/internal/safefile"
	"github.com/vm2mesh/vm2mesh/remote"
)

// Runner runs steps in order, skipping what is done and saving progress in the
// work directory after every step.
type Runner struct {
	Steps []Step
	Env   *Env
	Emit  func(Event)
	// Skip names steps the operator chose to skip after they failed.
	Skip map[string]bool
	// Command names the command in plan.sh ("apply" when empty); PlanFile is
	// the dry run's script ("plan.sh" when empty).
	Command, PlanFile string
}

// Result counts what a run did.
type Result struct {
	Ran     int // steps that ran and may have changed something
	Checked int // read-only steps that ran
	Skipped int
}

// readOnly steps change nothing when they run (checks).
type readOnly interface{ ReadOnly() bool }

// Run runs every step; it stops at the first failure and returns it.
func (r *Runner) Run(ctx context.Context) (Result, error) {
	var res Result
	state := LoadState(r.Env.WorkDir, r.Env.Settings)
	for _, st := range r.Steps {
		out := &Output{step: st, emit: r.Emit}
		if r.Skip[st.Name()] {
			res.Skipped++
			out.send(Event{Kind: Skipped, Text: "skipped by the operator"})
			continue
		}
		status, err := st.Check(ctx, r.Env)
		if err == nil && status.Skip {
			res.Skipped++
			out.send(Event{Kind: Skipped, Text: status.Reason})
			state.Mark(st.Name(), "skipped", "")
			if err := state.Save(); err != nil {
				return res, err
			}
			continue
		}
		out.send(Event{Kind: Started, Text: status.Reason})
		if err == nil {
			err = st.Run(ctx, r.Env, out)
		}
		// What a step created is remembered even when it then failed: remove
		// deletes only what vm2mesh made.
		state.record(out.created)
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("interrupted: %w", ctx.Err())
			}
			out.send(Event{Kind: Failed, Text: err.Error(), Err: err, Hint: HintOf(err)})
			state.Mark(st.Name(), "failed", remote.CleanText(err.Error()))
			if serr := state.Save(); serr != nil {
				err = errors.Join(err, serr)
			}
			return res, err
		}
		if ro, ok := st.(readOnly); ok && ro.ReadOnly() {
			res.Checked++
		} else {
			res.Ran++
		}
		out.send(Event{Kind: Done, Text: strings.Join(out.notes, "; ")})
		state.Mark(st.Name(), "done", "")
		if err := state.Save(); err != nil {
			return res, err
		}
	}
	return res, nil
}

// DryRun writes what Run would do into the work directory: each manifest as its
// file and every command, in order, into plan.sh. It changes nothing in the
// cluster; Check only reads.
func (r *Runner) DryRun(ctx context.Context) (files []string, err error) {
	dir := r.Env.WorkDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var script strings.Builder
	command, planFile := r.Command, r.PlanFile
	if command == "" {
		command = "apply"
	}
	if planFile == "" {
		planFile = "plan.sh"
	}
	fmt.Fprintf(&script, "#!/bin/sh\n# What `vm2mesh %[1]s` would do with these settings, in order.\n# Written by vm2mesh %[1]s --dry-run; nothing was changed.\nset -e\n", command)
	for i, st := range r.Steps {
		fmt.Fprintf(&script, "\n# %d. %s [%s]\n", i+1, st.Title(), st.Name())
		status, err := st.Check(ctx, r.Env)
		switch {
		case err != nil:
			fmt.Fprintf(&script, "# cannot tell whether it is done yet: %s\n", oneLine(err.Error()))
		case status.Skip:
			fmt.Fprintf(&script, "# skipped: %s\n", oneLine(status.Reason))
		}
		actions, err := st.Plan(r.Env)
		if err != nil {
			return files, fmt.Errorf("%s: %w", st.Name(), err)
		}
		for _, a := range actions {
			switch a.Kind {
			case Manifest:
				path := filepath.Join(dir, a.File)
				if _, err := safefile.Write(path, []byte(a.Body)); err != nil {
					return files, err
				}
				files = append(files, path)
				fmt.Fprintf(&script, "# manifest: %s (%s)\n", a.File, a.Title)
			case Command:
				fmt.Fprintf(&script, "%s\n", ShellJoin(a.Argv))
			case Note:
				for _, l := range strings.Split(a.Body, "\n") {
					fmt.Fprintf(&script, "# %s\n", l)
				}
			}
		}
	}
	path := filepath.Join(dir, planFile)
	if _, err := safefile.Write(path, []byte(script.String())); err != nil {
		return files, err
	}
	return append(files, path), nil
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// ShellJoin quotes argv for a POSIX shell.
func ShellJoin(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		parts[i] = remote.Quote(a)
	}
	return strings.Join(parts, " ")
}

// State is the saved progress of runs with one set of settings.
type State struct {
	path     string
	Settings string               `json:"settings"`
	Steps    map[string]StepState `json:"steps"`
	// Created names what vm2mesh created in the cluster ("namespace/NS",
	// "serviceaccount/NS/NAME"): remove deletes those and nothing it found.
	Created map[string]bool `json:"created,omitempty"`
}

// StepState is how a step ended last.
type StepState struct {
	Status string    `json:"status"` // done, skipped, failed
	Error  string    `json:"error,omitempty"`
	At     time.Time `json:"at"`
}

// StatePath is where progress is kept in the work directory.
func StatePath(workDir string) string { return filepath.Join(workDir, ".vm2mesh-state.json") }

// LoadState reads saved progress; progress saved for other settings is dropped.
func LoadState(workDir string, s Settings) *State {
	st := &State{path: StatePath(workDir), Settings: s.Hash(), Steps: map[string]StepState{}}
	data, err := os.ReadFile(st.path)
	if err != nil {
		return st
	}
	var saved State
	if json.Unmarshal(data, &saved) != nil {
		return st
	}
	// What was created outlives changed settings: its keys name the objects.
	st.Created = saved.Created
	if saved.Settings == st.Settings && saved.Steps != nil {
		st.Steps = saved.Steps
	}
	return st
}

// Mark records how a step ended.
func (s *State) Mark(step, status, errText string) {
	s.Steps[step] = StepState{Status: status, Error: errText, At: time.Now().UTC()}
}

// record adds what a step created (true) and drops what it deleted (false).
func (s *State) record(created map[string]bool) {
	for k, made := range created {
		if made {
			if s.Created == nil {
				s.Created = map[string]bool{}
			}
			s.Created[k] = true
		} else {
			delete(s.Created, k)
		}
	}
}

// Failed names the step the last run failed at, if any.
func (s *State) Failed() (string, bool) {
	for name, st := range s.Steps {
		if st.Status == "failed" {
			return name, true
		}
	}
	return "", false
}

// Save writes the progress atomically.
func (s *State) Save() error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return safefile.Replace(s.path, append(data, '\n'))
}
