package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/remote"
	"github.com/vm2mesh/vm2mesh/vmconfig"
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

// harmless are error-level lines a healthy agent prints.
var harmless = []string{
	"failed to set gomemlimit", // automemlimit, on a VM where the agent is in no memory cgroup
}

// Judge reads one agent log line: a certificate line decides success; an
// error-level line (or a line without a level that says it failed, as shells
// and sudo write them) decides failure; warnings and retries decide nothing.
func Judge(line string) Verdict {
	l := strings.ToLower(line)
	switch {
	case strings.Contains(l, "generated new workload certificate"),
		strings.Contains(l, "pushed key/cert pair"),
		strings.Contains(l, "sds: push") && strings.Contains(l, "resource:default"),
		strings.Contains(l, "envoy proxy is ready"):
		return Joined
	}
	for _, h := range harmless {
		if strings.Contains(l, h) {
			return Undecided
		}
	}
	switch level := logLevel(l); level {
	case "error", "fatal":
		return AgentFailed
	case "":
		if strings.HasPrefix(l, "error") || strings.Contains(l, "failed") {
			return AgentFailed
		}
	}
	return Undecided
}

// logLevel is the level of an Istio log line ("2026-...Z\tinfo\t...") or a Go
// slog line ("2026/11/21 07:04:57 ERROR ..."), lower case; "" for other lines.
func logLevel(l string) string {
	if f := strings.SplitN(l, "\t", 3); len(f) == 3 && len(f[0]) >= 20 && f[0][4] == '-' {
		return f[1]
	}
	if f := strings.Fields(l); len(f) >= 3 && len(f[0]) == 10 && f[0][4] == '/' {
		switch f[2] {
		case "debug", "info", "warn", "error":
			return f[2]
		}
	}
	return ""
}

// knownCauses turns a failing line into the likely cause and fix.
func knownCauses(line string) string {
	l := strings.ToLower(line)
	switch {
	case strings.Contains(l, "token") && (strings.Contains(l, "expired") || strings.Contains(l, "audience") || strings.Contains(l, "authenticate") || strings.Contains(l, "unauthenticated")),
		strings.Contains(l, "request authenticate failure"): // istiod's whole answer to a refused token
		return "istio-token was refused (expired, or not for audience istio-ca): run vm2mesh again to mint a fresh token, and start the agent within tokenDuration"
	case strings.Contains(l, "x509") || strings.Contains(l, "unknown authority") || strings.Contains(l, "certificate signed by"):
		return "istiod's certificate does not verify with /etc/certs/root-cert.pem: the root cert is from another CA; run vm2mesh again to fetch the current one"
	case strings.Contains(l, "connection refused") || strings.Contains(l, "no route to host") || strings.Contains(l, "i/o timeout") || strings.Contains(l, "connection reset"):
		return "the agent cannot reach istiod through the gateway: check the /etc/hosts entry, the gateway address and firewalls (port 15012)"
	case strings.Contains(l, "eof") || strings.Contains(l, "connection closed"):
		return "the agent cannot reach istiod through the gateway: the gateway took the connection on 15012 and closed it, so nothing answers behind it; check that istiod runs and that the expose-istiod step's Gateway and VirtualService exist"
	case strings.Contains(l, "no such host") || strings.Contains(l, "failed to resolve") || strings.Contains(l, "lookup istiod"):
		return "istiod's name does not resolve on the VM: the /etc/hosts entry is missing or wrong"
	case strings.Contains(l, "missing") || strings.Contains(l, "not readable"):
		return "a file the agent needs is missing or not readable by istio-proxy: run vm2mesh again (it places them and fixes ownership)"
	}
	return "read /var/log/istio/istio.log and istio.err.log on the VM"
}

// explain is knownCauses, made exact for a refused token by the token's own
// claims: istiod answers only "request authenticate failure".
func (e *Env) explain(line string) string {
	cause := knownCauses(line)
	l := strings.ToLower(line)
	if !strings.Contains(l, "unauthenticated") && !strings.Contains(l, "authenticate failure") {
		return cause
	}
	b, err := os.ReadFile(e.File("istio-token"))
	if err != nil {
		return cause
	}
	c, err := vmconfig.ParseTokenClaims(string(b))
	if err != nil {
		return "istio-token is not a JWT: run vm2mesh again to mint a fresh one"
	}
	switch {
	case !slices.Contains(c.Audience, k8s.IstioCAAudience):
		return fmt.Sprintf("istio-token is for audience %s; istiod accepts only %s: run vm2mesh again to mint a token for %s",
			strings.Join(c.Audience, ","), k8s.IstioCAAudience, k8s.IstioCAAudience)
	case c.Expiry != 0 && time.Now().After(c.ExpiresAt()):
		return fmt.Sprintf("istio-token expired at %s: run vm2mesh again to mint a fresh one, and start the agent within tokenDuration (or raise it)",
			c.ExpiresAt().UTC().Format(time.RFC3339))
	}
	return cause + " (the token's audience and expiry look right: is it from this cluster, and does its service account still exist?)"
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
	deadline := time.Now().Add(env.agentWait())
	for reconnects := 0; ; reconnects++ {
		err := env.VM.Tail(ctx, files, time.Until(deadline), func(l remote.Line) bool {
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
