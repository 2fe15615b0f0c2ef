package ui

import (
	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
)

// keyMap is every key of the pages, in one place: the help lines are made from
// these bindings, so they say what the keys do.
type keyMap struct {
	Up, Down, PageUp, PageDown, End key.Binding
	Apply, Back, Quit, Interrupt    key.Binding
	Cancel, Retry, Skip, Doctor     key.Binding
	Rerun                           key.Binding
	// The dialogs'.
	Trust, TrustOnce, Reject, Submit, Abort key.Binding
	Yes, No                                 key.Binding
}

var keys = keyMap{
	Up:        key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/↓", "step")),
	Down:      key.NewBinding(key.WithKeys("down", "j")),
	PageUp:    key.NewBinding(key.WithKeys("pgup"), key.WithHelp("pgup/pgdn", "scroll")),
	PageDown:  key.NewBinding(key.WithKeys("pgdown", "space")),
	End:       key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("end", "follow")),
	Apply:     key.NewBinding(key.WithKeys("enter", "a"), key.WithHelp("enter", "apply")),
	Back:      key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "settings")),
	Quit:      key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
	Interrupt: key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "cancel")),
	Cancel:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
	Retry:     key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "retry")),
	Skip:      key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "skip")),
	Doctor:    key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "doctor")),
	Rerun:     key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "check again")),
	Trust:     key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "trust and remember")),
	TrustOnce: key.NewBinding(key.WithKeys("o"), key.WithHelp("o", "trust once")),
	Reject:    key.NewBinding(key.WithKeys("n", "esc", "ctrl+c"), key.WithHelp("n", "abort")),
	Submit:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "submit")),
	Abort:     key.NewBinding(key.WithKeys("esc", "ctrl+c"), key.WithHelp("esc", "abort")),
	Yes:       key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "yes")),
	No:        key.NewBinding(key.WithKeys("n", "esc"), key.WithHelp("n", "no")),
}

// with is b with another description (the same key says "quit" on one page
// and "back" on another).
func with(b key.Binding, desc string) key.Binding {
	b.SetHelp(b.Help().Key, desc)
	return b
}

// helpLine is the bindings' help in one line, cut to width.
func helpLine(width int, bindings ...key.Binding) string {
	h := help.New()
	h.Styles = helpStyles
	h.ShortSeparator = " · "
	h.SetWidth(width)
	return h.ShortHelpView(bindings)
}
