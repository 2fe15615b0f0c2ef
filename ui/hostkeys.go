package ui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/vm2mesh/vm2mesh/remote"
	"github.com/vm2mesh/vm2mesh/steps"
)

// hostKeyWindow is how long the first unknown key of a batch waits for the
// keys of the other VMs logging in at the same time.
const hostKeyWindow = 400 * time.Millisecond

// hostKeysMsg asks about the unknown host keys of several VMs at once; each
// VM's login waits for its own answer.
type hostKeysMsg struct {
	asks []hostKeyAsk
}

type hostKeyAsk struct {
	q     steps.HostKeyQuestion
	reply chan promptReply
}

// hostKeyBatcher gathers the unknown keys of VMs logging in together into one
// dialog: the first waits hostKeyWindow for the others, then they are asked
// together; keys that come while the dialog is open make the next one.
type hostKeyBatcher struct {
	ctx  context.Context
	bus  bus
	tr   *tracer
	mu   sync.Mutex
	asks []hostKeyAsk
}

func (h *hostKeyBatcher) ask(q steps.HostKeyQuestion) (remote.HostKeyDecision, error) {
	h.tr.printf("asked: unknown host key of %s (%s)", q.VM, q.Host)
	a := hostKeyAsk{q: q, reply: make(chan promptReply, 1)}
	h.mu.Lock()
	h.asks = append(h.asks, a)
	first := len(h.asks) == 1
	h.mu.Unlock()
	if first {
		go func() {
			select {
			case <-time.After(hostKeyWindow):
			case <-h.ctx.Done():
			}
			h.mu.Lock()
			asks := h.asks
			h.asks = nil
			h.mu.Unlock()
			select {
			case h.bus <- hostKeysMsg{asks: asks}:
			case <-h.ctx.Done():
			}
		}()
	}
	select {
	case r := <-a.reply:
		return r.decision, r.err
	case <-h.ctx.Done():
		return remote.RejectHost, h.ctx.Err()
	}
}

// hostKeysDialog lists each VM's unknown key with its fingerprint; every one
// is refused unless the operator accepts it (all at once, or one by one).
type hostKeysDialog struct {
	asks    []hostKeyAsk
	accept  []bool
	cursor  int
	width   int
	maxRows int
}

func (d *hostKeysDialog) open(m hostKeysMsg) {
	// The VMs ask in the order their logins got there: listed by name.
	slices.SortFunc(m.asks, func(a, b hostKeyAsk) int { return strings.Compare(a.q.VM, b.q.VM) })
	d.asks, d.accept, d.cursor = m.asks, make([]bool, len(m.asks)), 0
}

func (d *hostKeysDialog) isOpen() bool { return d.asks != nil }

// answer replies to every VM: decide(i) is VM i's decision.
func (d *hostKeysDialog) answer(decide func(i int) remote.HostKeyDecision, err error) {
	for i, a := range d.asks {
		a.reply <- promptReply{decision: decide(i), err: err}
	}
	d.asks, d.accept = nil, nil
}

var (
	keyAcceptAll     = key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "trust all"))
	keyAcceptAllOnce = key.NewBinding(key.WithKeys("o"), key.WithHelp("o", "all once"))
	keyToggle        = key.NewBinding(key.WithKeys("space", "x"), key.WithHelp("space", "trust this"))
	keyConfirm       = key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "as marked"))
	keyRejectAll     = key.NewBinding(key.WithKeys("n", "esc"), key.WithHelp("n", "refuse all"))
)

func (d *hostKeysDialog) key(k tea.KeyPressMsg) {
	switch {
	case key.Matches(k, keys.Up):
		d.cursor = max(d.cursor-1, 0)
	case key.Matches(k, keys.Down):
		d.cursor = min(d.cursor+1, len(d.asks)-1)
	case key.Matches(k, keyToggle):
		d.accept[d.cursor] = !d.accept[d.cursor]
	case key.Matches(k, keyAcceptAll):
		d.answer(func(int) remote.HostKeyDecision { return remote.AcceptAndRemember }, nil)
	case key.Matches(k, keyAcceptAllOnce):
		d.answer(func(int) remote.HostKeyDecision { return remote.AcceptOnce }, nil)
	case key.Matches(k, keyConfirm):
		accept := d.accept
		d.answer(func(i int) remote.HostKeyDecision {
			if accept[i] {
				return remote.AcceptAndRemember
			}
			return remote.RejectHost
		}, nil)
	case key.Matches(k, keyRejectAll):
		d.answer(func(int) remote.HostKeyDecision { return remote.RejectHost }, nil)
	}
}

func (d *hostKeysDialog) View() string {
	w := max(d.width-4, 20)
	n := len(d.asks)
	title := fmt.Sprintf("Unknown host keys of %d VMs", n)
	if n == 1 {
		title = "Unknown host key of 1 VM"
	}
	body := wrap(titleStyle.Render(title), w) + "\n"
	first, last := window(n, d.cursor, max(d.maxRows, 1))
	for i := first; i < last; i++ {
		q := d.asks[i].q
		box := "[ ]"
		if d.accept[i] {
			box = okStyle.Render("[✓]")
		}
		cursor := " "
		name := q.VM
		if i == d.cursor {
			cursor, name = selectStyle.Render("›"), selectStyle.Render(name)
		}
		body += ansi.Truncate(cursor+box+" "+name+" "+dimStyle.Render(q.Host+" "+q.KeyType), w, "…") + "\n"
		body += ansi.Truncate("      "+q.Fingerprint, w, "…") + "\n"
	}
	body += helpLine(w, keyToggle, keyConfirm, keyAcceptAll, keyAcceptAllOnce, keyRejectAll)
	return boxStyle.Render(body)
}
