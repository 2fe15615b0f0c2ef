package steps

import (
	"context"
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

// Verdict is what one log line says about the agent.
type Verdict int

const (
	Undecided Verdict = iota
	Joined
	AgentFailed
)

// Judge reads one agent log line.
func Judge(line string) Verdict {
	l := strings.ToLower(line)
	switch {
	case strings.Contains(l, "generated new workload certificate"),
		strings.Contains(l, "pushed key/cert pair"),
		strings.Contains(l, "sds: push") && strings.Contains(l, "resource:default"),
		strings.Contains(l, "envoy proxy is ready"):
		return Joined
	case strings.Contains(l, "failed"), strings.Contains(l, "\terror\t"), strings.HasPrefix(l, "error"):
		return AgentFailed
	}
	return Undecided
}

// knownCauses turns a failing line into the likely cause and fix.
func knownCauses(line string) string {
	l := strings.ToLower(line)
	switch {
	case strings.Contains(l, "token") && (strings.Contains(l, "expired") || strings.Contains(l, "audience") || strings.Contains(l, "authenticate") || strings.Contains(l, "unauthenticated")):
		return "istio-token was refused (expired, or not for audience istio-ca): run vm2mesh again to mint a fresh token, and start the agent within tokenDuration"
	case strings.Contains(l, "x509") || strings.Contains(l, "unknown authority") || strings.Contains(l, "certificate signed by"):
		return "istiod's certificate does not verify with /etc/certs/root-cert.pem: the root cert is from another CA; run vm2mesh again to fetch the current one"
	case strings.Contains(l, "connection refused") || strings.Contains(l, "no route to host") || strings.Contains(l, "i/o timeout") || strings.Contains(l, "connection reset"):
		return "the agent cannot reach istiod through the gateway: check the /etc/hosts entry, the gateway address and firewalls (port 15012)"
	case strings.Contains(l, "no such host") || strings.Contains(l, "failed to resolve") || strings.Contains(l, "lookup istiod"):
		return "istiod's name does not resolve on the VM: the /etc/hosts entry is missing or wrong"
	case strings.Contains(l, "missing") || strings.Contains(l, "not readable"):
		return "a file the agent needs is missing or not readable by istio-proxy: run vm2mesh again (it places them and fixes ownership)"
	}
	return "read /var/log/istio/istio.log and istio.err.log on the VM"
}

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
	out, err := env.VM.RunRoot(ctx, "cat "+agentLog+" 2>/dev/null; true")
	if err != nil {
		return Status{}, err
	}
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
	err := env.VM.Tail(ctx, files, env.agentWait(), func(l remote.Line) bool {
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
	if err != nil {
		return err
	}
	switch verdict {
	case Joined:
		out.Summary("joined: %s", strings.TrimSpace(decisive))
		return nil
	case AgentFailed:
		return WithHint(fmt.Errorf("the agent failed: %s", strings.TrimSpace(decisive)), "%s", knownCauses(decisive))
	}
	return WithHint(fmt.Errorf("no verdict from the agent within %s; its last lines: %s", env.agentWait(), strings.Join(recent, " | ")),
		"check that the agent runs (systemctl status istio, or pgrep -f istio-start.sh) and read /var/log/istio/istio.err.log")
}

// VMSteps are the VM half of the procedure, in order: the package first, as its
// post-install makes the user and directories the files need.
func VMSteps() []Step {
	return []Step{VMPreflight{}, VMPackage{}, VMPlaceFiles{}, VMStart{}, VMVerify{}}
}
