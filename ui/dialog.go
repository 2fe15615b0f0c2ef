package ui

import (
	"errors"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/vm2mesh/vm2mesh/remote"
)

var (
	errNotApplied    = errors.New("nothing changed: the plan was not applied")
	errPromptAborted = errors.New("aborted at the prompt")
)

// dialog is a question from background work: an unknown host key, a secret
// (masked, never logged) or a keyboard-interactive answer. It sits over any page.
type dialog struct {
	prompt *promptMsg
	input  textinput.Model
	width  int
}

func newDialog() dialog {
	d := dialog{input: textinput.New()}
	d.input.EchoMode = textinput.EchoPassword
	return d
}

func (d *dialog) open(p promptMsg) tea.Cmd {
	d.prompt = &p
	d.input.SetValue("")
	d.input.EchoMode = textinput.EchoPassword
	if p.kind == promptText {
		d.input.EchoMode = textinput.EchoNormal
	}
	return d.input.Focus()
}

func (d *dialog) answer(r promptReply) {
	d.prompt.reply <- r
	d.prompt = nil
	d.input.SetValue("")
}

func (d *dialog) keys() []key.Binding {
	if d.prompt.kind == promptHostKey {
		return []key.Binding{keys.Trust, keys.TrustOnce, keys.Reject}
	}
	return []key.Binding{keys.Submit, keys.Abort}
}

func (d *dialog) key(k tea.KeyPressMsg) tea.Cmd {
	if d.prompt.kind == promptHostKey {
		switch {
		case key.Matches(k, keys.Trust):
			d.answer(promptReply{decision: remote.AcceptAndRemember})
		case key.Matches(k, keys.TrustOnce):
			d.answer(promptReply{decision: remote.AcceptOnce})
		case key.Matches(k, keys.Reject):
			d.answer(promptReply{decision: remote.RejectHost})
		}
		return nil
	}
	switch {
	case key.Matches(k, keys.Submit):
		d.answer(promptReply{secret: d.input.Value()})
		return nil
	case key.Matches(k, keys.Abort):
		d.answer(promptReply{err: errPromptAborted})
		return nil
	}
	var cmd tea.Cmd
	d.input, cmd = d.input.Update(k)
	return cmd
}

func (d *dialog) View() string {
	p := d.prompt
	w := max(d.width-4, 20)
	body := wrap(titleStyle.Render(p.title), w) + "\n"
	if p.detail != "" {
		body += wrap(p.detail, w) + "\n"
	}
	if p.kind != promptHostKey {
		body += d.input.View() + "\n"
	} else {
		body += "\n"
	}
	body += helpLine(w, d.keys()...)
	return boxStyle.Render(body)
}
