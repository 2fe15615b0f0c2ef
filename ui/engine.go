// Package ui is vm2mesh's wizard: Bubble Tea v2 pages over the same steps and
// events `vm2mesh apply` runs. Nothing here changes the cluster or the VM except
// by running steps, and nothing runs before the operator has seen the plan.
package ui

import (
	"context"
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/remote"
	"github.com/vm2mesh/vm2mesh/steps"
)

// Engine prepares a run: the preflight of the cluster and the VM, and the steps.
type Engine interface {
	Prepare(ctx context.Context, s steps.Settings, p steps.Prompts) (*steps.Env, []steps.Step, error)
}

// RealEngine is the one `vm2mesh` uses.
type RealEngine struct {
	K8s  k8s.Options
	Only string // "", "cluster" or "vm"
}

func (e RealEngine) Prepare(ctx context.Context, s steps.Settings, p steps.Prompts) (*steps.Env, []steps.Step, error) {
	o := e.K8s
	o.NoStdin = true // the wizard owns the terminal
	return steps.PrepareRun(ctx, s, o, e.Only, p)
}

// bus carries what background work reports (events, prompts, results) into the
// program; the model listens again after each message.
type bus chan tea.Msg

func (b bus) listen() tea.Cmd { return func() tea.Msg { return <-b } }

// Messages from background work.
type (
	preparedMsg struct {
		env   *steps.Env
		steps []steps.Step
		err   error
	}
	checkedMsg struct {
		rows []planRow
		err  error
	}
	eventMsg steps.Event
	ranMsg   struct {
		res steps.Result
		err error
	}
	// promptMsg asks the operator; the background work waits for the reply.
	promptMsg struct {
		kind   promptKind
		title  string
		detail string
		reply  chan promptReply
	}
)

type promptKind int

const (
	promptHostKey promptKind = iota
	promptSecret
	promptText // an answer shown as it is typed (the server asked with echo on)
)

type promptReply struct {
	decision remote.HostKeyDecision
	secret   string
	err      error
}

// prompts route the engine's questions through the bus to the prompt dialog.
func (b bus) prompts(ctx context.Context) steps.Prompts {
	ask := func(kind promptKind, title, detail string) promptReply {
		reply := make(chan promptReply, 1)
		select {
		case b <- promptMsg{kind: kind, title: title, detail: detail, reply: reply}:
		case <-ctx.Done():
			return promptReply{err: ctx.Err()}
		}
		select {
		case r := <-reply:
			return r
		case <-ctx.Done():
			return promptReply{err: ctx.Err()}
		}
	}
	secret := func(title string) (string, error) {
		r := ask(promptSecret, title, "")
		return r.secret, r.err
	}
	return steps.Prompts{
		HostKey: func(host, keyType, fp string) (remote.HostKeyDecision, error) {
			r := ask(promptHostKey, "Unknown host "+host, keyType+" key fingerprint\n"+fp)
			return r.decision, r.err
		},
		Passphrase: func(file string) (string, error) { return secret("Passphrase for " + file) },
		Password:   func(user, host string) (string, error) { return secret("Password for " + user + "@" + host) },
		Sudo:       func(user, host string) (string, error) { return secret("sudo password for " + user + " on " + host) },
		// A keyboard-interactive question other than the password (a one-time
		// code): a dialog each, in the server's words, cleaned of escapes.
		Question: func(user, host, instruction, question string, echo bool) (string, error) {
			kind := promptSecret
			if echo {
				kind = promptText
			}
			r := ask(kind, user+"@"+host+" asks: "+remote.CleanText(strings.TrimSpace(question)), remote.CleanText(strings.TrimSpace(instruction)))
			return r.secret, r.err
		},
	}
}
