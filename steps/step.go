// Package steps is vm2mesh's domain: the ordered steps that take a cluster and a
// VM into the mesh. Each step says whether it is already done, shows what it will
// do, and runs with a context while reporting events. The TUI and the headless
// runner read the same events; nothing here knows about either.
package steps

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vm2mesh/vm2mesh/remote"
)

// Step is one stage of the procedure.
type Step interface {
	Name() string  // stable id, used in saved progress: "expose-istiod"
	Title() string // for people: "Expose istiod through the gateway"
	// Check reads (never writes) and says whether the step can be skipped.
	Check(ctx context.Context, env *Env) (Status, error)
	// Plan lists exactly what Run would apply or run.
	Plan(env *Env) ([]Action, error)
	Run(ctx context.Context, env *Env, out *Output) error
}

// Status is a step's verdict before it runs.
type Status struct {
	Skip   bool
	Reason string // why it is skipped, or what it found
}

// ActionKind is what an Action does.
type ActionKind string

const (
	Manifest ActionKind = "manifest" // YAML applied to the cluster (or handed to istioctl)
	Command  ActionKind = "command"  // a command line run locally or on the VM
	Note     ActionKind = "note"     // what happens through the API, in words
)

// Action is one thing a step does, shown before it is done.
type Action struct {
	Kind  ActionKind
	Title string
	File  string   // Manifest: its file name in the work directory
	Body  string   // Manifest: the YAML; Note: the text
	Argv  []string // Command: the command line, secrets elided
}

// EventKind is what happened.
type EventKind string

const (
	Started  EventKind = "started"
	Log      EventKind = "log"
	Warning  EventKind = "warning"
	Progress EventKind = "progress"
	Done     EventKind = "done"
	Skipped  EventKind = "skipped"
	Failed   EventKind = "failed"
)

// Event is what steps report while they run.
type Event struct {
	Step  string
	Title string
	Kind  EventKind
	Text  string
	Hint  string // Failed: what to do about it
	Err   error  // Failed
	Cur   int64  // Progress
	Total int64  // Progress
	Time  time.Time
}

// Output is how a running step reports.
type Output struct {
	step    Step
	emit    func(Event)
	notes   []string
	created map[string]bool // saved in the State by the runner
}

func (o *Output) send(e Event) {
	e.Step, e.Title, e.Time = o.step.Name(), o.step.Title(), time.Now()
	// What a step reports can quote the VM or a tool: never escape sequences.
	e.Text, e.Hint = remote.CleanText(e.Text), remote.CleanText(e.Hint)
	if o.emit != nil {
		o.emit(e)
	}
}

// Logf reports a line of progress.
func (o *Output) Logf(format string, args ...any) {
	o.send(Event{Kind: Log, Text: fmt.Sprintf(format, args...)})
}

// Warnf reports something the operator should know but that does not stop the step.
func (o *Output) Warnf(format string, args ...any) {
	o.send(Event{Kind: Warning, Text: fmt.Sprintf(format, args...)})
}

// Progress reports bytes (or items) done of total.
func (o *Output) Progress(text string, cur, total int64) {
	o.send(Event{Kind: Progress, Text: text, Cur: cur, Total: total})
}

// Summary sets the one line shown beside the finished step.
func (o *Output) Summary(format string, args ...any) {
	o.notes = append(o.notes, fmt.Sprintf(format, args...))
}

// Created records that the step created (true) or deleted (false) what key
// names, so that remove knows what is vm2mesh's to delete.
func (o *Output) Created(key string, created bool) {
	if o.created == nil {
		o.created = map[string]bool{}
	}
	o.created[key] = created
}

// HintError is an error with advice for the operator.
type HintError struct {
	Err  error
	Hint string
}

func (e *HintError) Error() string { return e.Err.Error() }
func (e *HintError) Unwrap() error { return e.Err }

// WithHint attaches advice to err.
func WithHint(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &HintError{Err: err, Hint: fmt.Sprintf(format, args...)}
}

// HintOf returns the advice attached to err, if any.
func HintOf(err error) string {
	var h *HintError
	if errors.As(err, &h) {
		return h.Hint
	}
	return ""
}
