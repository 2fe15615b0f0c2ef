package steps

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vm2mesh/vm2mesh/remote"
)

// VMVerify follows the agent's log until it reports its certificate, fails, or
// the wait runs out, and names the line that decided.
type VMVerify struct{}

func (VMVerify) Name() string  { return "vm-verify" }
func (VMVerify) Title() string { return "Confirm the agent got its certificate" }

func (v VMVerify) Check(ctx context.Context, env *Env) (Status, error) {
	if err := env.vmReady(); err != nil {
		return Status{}, err
	}
	if env.vmChanged || env.agentStarted {
		return Status{Reason: "the agent was (re)started"}, nil
	}
	if _, err := env.VM.RunRoot(ctx, runningScript(env)); err != nil {
		return Status{Reason: "the agent is not running"}, nil
	}
	// The log directory is the agent's: read as the agent, so that a link there
	// cannot show root's files.
	out, err := env.asAgent(ctx, "cat "+agentLog+" 2>/dev/null; true")
	if err != nil {
		return Status{}, err
	}
	out = remote.CleanText(out)
	last, line := Undecided, ""
	for _, l := range strings.Split(out, "\n") {
		if j := Judge(l); j != Undecided {
			last, line = j, l
		}
	}
	if last == Joined {
		return Status{Skip: true, Reason: "the agent runs and its log shows its certificate: " + strings.TrimSpace(line)}, nil
	}
	return Status{Reason: "the agent's log shows no certificate yet"}, nil
}

func (VMVerify) Plan(env *Env) ([]Action, error) {
	return []Action{{Kind: Command, Title: "follow the agent's log", Argv: []string{"tail", "-F", agentLog, agentErrLog}},
		{Kind: Note, Title: "verdict", Body: fmt.Sprintf("until a certificate line (joined), a failed/error line, or %s", env.agentWait())}}, nil
}

func (e *Env) agentWait() time.Duration {
	if w := e.Settings.VM.AgentWait; w > 0 {
		return time.Duration(w) * time.Second
	}
	return 90 * time.Second
}

func (VMVerify) Run(ctx context.Context, env *Env, out *Output) error {
	verdict, decisive := Undecided, ""
	var recent []string
	files := []remote.TailFile{{Path: agentLog, Offset: env.logOffsets[0]}, {Path: agentErrLog, Offset: env.logOffsets[1]}}
	deadline := time.Now().Add(env.agentWait())
	for reconnects := 0; ; reconnects++ {
		err := env.VM.Tail(ctx, agentUser, files, time.Until(deadline), func(l remote.Line) bool {
			for i := range files {
				if files[i].Path == l.File {
					files[i].Offset += int64(len(l.Text)) + 1 // resume after it if the connection drops
				}
			}
			text := strings.TrimRight(l.Text, "\r")
			out.Logf("%s: %s", strings.TrimPrefix(l.File, "/var/log/istio/"), text)
			recent = append(recent, text)
			if len(recent) > 5 {
				recent = recent[1:]
			}
			if j := Judge(text); j != Undecided {
				verdict, decisive = j, text
				return true
			}
			return false
		})
		if err == nil {
			break
		}
		var exit *remote.ExitError
		if ctx.Err() != nil || errors.As(err, &exit) || reconnects == 3 || time.Now().After(deadline) {
			return err
		}
		// The agent's istio-iptables redirects the VM's outbound traffic; a
		// connection that was open before its rules (and before conntrack tracked
		// it) can be cut. New SSH connections are excluded (port 22).
		out.Warnf("the SSH connection was cut after the agent started (its iptables rules can take over connections opened before them); reconnecting")
		if err := env.VM.Reconnect(ctx); err != nil {
			return WithHint(fmt.Errorf("reconnecting to the VM after the agent started: %w", err),
				"check that ISTIO_LOCAL_EXCLUDE_PORTS in cluster.env keeps 22 (the SSH port) out of the agent's interception")
		}
	}
	switch verdict {
	case Joined:
		out.Summary("joined: %s", strings.TrimSpace(decisive))
		return nil
	case AgentFailed:
		return WithHint(fmt.Errorf("the agent failed: %s", strings.TrimSpace(decisive)), "%s", env.explain(decisive))
	}
	return WithHint(fmt.Errorf("no verdict from the agent within %s; its last lines: %s", env.agentWait(), strings.Join(recent, " | ")),
		"check that the agent runs (systemctl status istio, or pgrep -f istio-start.sh) and read /var/log/istio/istio.err.log")
}

// VMSteps are the VM half of the procedure, in order: the package first, as its
// post-install makes the user and directories the files need.
func VMSteps() []Step {
	return []Step{VMPreflight{}, VMPackage{}, VMPlaceFiles{}, VMStart{}, VMVerify{}}
}
