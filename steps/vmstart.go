package steps

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/vm2mesh/vm2mesh/remote"
)

// Agent log files.
const (
	agentLog    = "/var/log/istio/istio.log"
	agentErrLog = "/var/log/istio/istio.err.log"
)

// agentPattern matches the agent as the process table lists it, from the start of
// its arguments, so it never matches the shell that runs pgrep or pkill.
const agentPattern = "^(/usr)?(/bin/(ba)?sh )?/usr/local/bin/(istio-start[.]sh|pilot-agent)( |$)"

// VMStart starts the agent: through systemd, enabled at boot, where systemd runs;
// otherwise istio-start.sh detached from / (its default paths are relative).
type VMStart struct{}

func (VMStart) Name() string  { return "vm-start" }
func (VMStart) Title() string { return "Start the Istio agent" }

func runningScript(env *Env) string {
	if env.Facts.Systemd {
		return "systemctl is-active --quiet istio"
	}
	return "pgrep -f '" + agentPattern + "' >/dev/null"
}

func (VMStart) Check(ctx context.Context, env *Env) (Status, error) {
	if err := env.vmReady(); err != nil {
		return Status{}, err
	}
	if env.vmChanged {
		return Status{Reason: "the agent's files changed: it is (re)started"}, nil
	}
	if _, err := env.VM.RunRoot(ctx, runningScript(env)); err != nil {
		return Status{Reason: "the agent is not running"}, nil
	}
	return Status{Skip: true, Reason: "the agent runs and nothing it reads changed"}, nil
}

func startScript(env *Env) string {
	if env.Facts.Systemd {
		return "systemctl enable istio && systemctl restart istio"
	}
	// All three streams of the new one detached, or the SSH session would never
	// end.
	return stopDetachedScript + "; cd / && setsid /usr/local/bin/istio-start.sh </dev/null >/dev/null 2>&1 &"
}

// stopDetachedScript stops an agent started without systemd. It drains for a
// few seconds after SIGTERM and keeps its ports (DNS 15053, status 15020)
// until it exits: wait for it (at most 30 s, then KILL), or a new one cannot
// bind them.
var stopDetachedScript = "pkill -f '" + agentPattern + "'; i=0; while pgrep -f '" + agentPattern + "' >/dev/null && [ $i -lt 150 ]; do sleep 0.2; i=$((i+1)); done; " +
	"pkill -9 -f '" + agentPattern + "'"

// sizesThenStartScript prints "sizes N M" (the agent's two logs, read as the
// agent; 0 for one that is not there) and then starts the agent; it stops
// before the start when the sizes cannot be read.
func sizesThenStartScript(env *Env) string {
	read := "for f in " + agentLog + " " + agentErrLog + "; do stat -c %s $f 2>/dev/null || echo 0; done"
	return remote.AsUserFunc(agentUser) + "\nsizes=$(as_user sh -c " + remote.Quote(read) + ") || exit $?\necho \"sizes \"$sizes\n" + startScript(env)
}

func (VMStart) Plan(env *Env) ([]Action, error) {
	return []Action{{Kind: Command, Title: "start the agent as root", Argv: []string{"sh", "-c", startScript(env)}}}, nil
}

func (VMStart) Run(ctx context.Context, env *Env, out *Output) error {
	// Where the logs end now, read as the agent (its directory): the verdict
	// reads only what this start writes. Read and started in one session.
	res, err := env.VM.RunRoot(ctx, sizesThenStartScript(env))
	env.logOffsets = [2]int64{}
	// The line is looked for, not expected first: a shell's start-up files on
	// the VM may print before it.
	var sizes string
	read := false
	for _, l := range strings.Split(res, "\n") {
		if sizes, read = strings.CutPrefix(l, "sizes "); read {
			break
		}
	}
	if !read {
		if err == nil {
			err = fmt.Errorf("the agent's log sizes were not read before starting it")
		}
		return err // the agent was not started: the sizes' read failed
	}
	f := strings.Fields(sizes)
	for i := 0; i < len(f) && i < 2; i++ {
		env.logOffsets[i], _ = strconv.ParseInt(f[i], 10, 64)
	}
	if err != nil {
		return WithHint(err, "see journalctl -u istio (or /var/log/istio/istio.err.log) on the VM")
	}
	env.agentStarted = true
	out.Logf("the agent's iptables rules can cut SSH sessions to the VM opened before them (where the VM tracked no connections yet); if yours stalls, open a new one")
	if env.Facts.Systemd {
		out.Summary("started with systemd (systemctl enable --now istio: it starts at boot too)")
	} else {
		out.Summary("started /usr/local/bin/istio-start.sh detached from / (no systemd on this VM: it will not restart by itself or at boot)")
	}
	return nil
}
