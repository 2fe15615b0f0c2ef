package steps

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vm2mesh/vm2mesh/k8s"
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
	last, line, err := env.lastVerdict(ctx)
	if err != nil {
		return Status{}, err
	}
	if last == Joined {
		reason := "the agent runs and its log shows its certificate: " + strings.TrimSpace(line)
		if env.checksWorkloadEntry() {
			addr, err := env.vmAddress(ctx)
			if err != nil {
				return Status{}, err
			}
			wes, err := env.Client.WorkloadEntries(ctx, env.Settings.Namespace, env.Settings.App, addr)
			if err != nil {
				return Status{}, err
			}
			if len(wes) == 0 || wes[0].Deleting {
				return Status{Reason: "the agent has its certificate but istiod has no WorkloadEntry for the VM"}, nil
			}
			reason += "; " + describeEntry(&wes[0])
		}
		return Status{Skip: true, Reason: reason}, nil
	}
	return Status{Reason: "the agent's log shows no certificate yet"}, nil
}

// lastVerdict is the last decisive line of the agent's whole log.
func (e *Env) lastVerdict(ctx context.Context) (Verdict, string, error) {
	// The log directory is the agent's: read as the agent, so that a link there
	// cannot show root's files.
	out, err := e.asAgent(ctx, "cat "+agentLog+" 2>/dev/null; true")
	if err != nil {
		return Undecided, "", err
	}
	last, line := Undecided, ""
	for _, l := range strings.Split(remote.CleanText(out), "\n") {
		if j := Judge(l); j != Undecided {
			last, line = j, l
		}
	}
	return last, line, nil
}

func (VMVerify) Plan(env *Env) ([]Action, error) {
	actions := []Action{{Kind: Command, Title: "follow the agent's log", Argv: []string{"tail", "-F", agentLog, agentErrLog}},
		{Kind: Note, Title: "verdict", Body: fmt.Sprintf("until a certificate line (joined), a failed/error line, or %s", env.agentWait())}}
	if env.checksWorkloadEntry() {
		actions = append(actions, Action{Kind: Command, Title: "wait for the WorkloadEntry istiod registers for the VM",
			Argv: []string{"kubectl", "get", "workloadentries", "-n", env.Settings.Namespace, "-o", "wide"}})
	}
	return actions, nil
}

func (e *Env) agentWait() time.Duration {
	if w := e.Settings.VM.AgentWait; w > 0 {
		return time.Duration(w) * time.Second
	}
	return 90 * time.Second
}

func (VMVerify) Run(ctx context.Context, env *Env, out *Output) error {
	if env.checksWorkloadEntry() && !env.vmChanged && !env.agentStarted {
		// An agent this run did not start, whose log already ends joined, lacks
		// only its WorkloadEntry (Check): its older lines decide nothing now.
		if last, line, err := env.lastVerdict(ctx); err == nil && last == Joined {
			out.Summary("joined: %s", strings.TrimSpace(line))
			return env.verifyWorkloadEntry(ctx, out, env.agentWait())
		}
	}
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
		if !env.checksWorkloadEntry() {
			return nil
		}
		return env.verifyWorkloadEntry(ctx, out, time.Until(deadline))
	case AgentFailed:
		return WithHint(fmt.Errorf("the agent failed: %s", strings.TrimSpace(decisive)), "%s", env.explain(decisive))
	}
	return WithHint(fmt.Errorf("no verdict from the agent within %s; its last lines: %s", env.agentWait(), strings.Join(recent, " | ")),
		"check that the agent runs (systemctl status istio, or pgrep -f istio-start.sh) and read /var/log/istio/istio.err.log")
}

// checksWorkloadEntry: with autoregistration istiod makes the VM a WorkloadEntry;
// a VM-only run has no cluster to ask.
func (e *Env) checksWorkloadEntry() bool {
	return e.Settings.Autoregister && e.Client != nil
}

// vmAddress is the address the agent reports to istiod (its INSTANCE_IP, which
// names the WorkloadEntry): cluster.env's ISTIO_SVC_IP, else, as istio-start.sh
// picks it, the VM's first address.
func (e *Env) vmAddress(ctx context.Context) (string, error) {
	if b, err := os.ReadFile(e.File("cluster.env")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "ISTIO_SVC_IP="); ok {
				if v = strings.Trim(v, `'"`); v != "" {
					return v, nil
				}
			}
		}
	}
	out, err := e.VM.Exec(ctx, remote.Cmd{Line: "hostname --all-ip-addresses"})
	if err != nil {
		return "", fmt.Errorf("reading the VM's address (hostname --all-ip-addresses): %w", err)
	}
	f := strings.Fields(remote.CleanText(out))
	if len(f) == 0 || net.ParseIP(f[0]) == nil {
		return "", fmt.Errorf("the VM's hostname --all-ip-addresses gave no address (%q): set vm.internalIP", strings.TrimSpace(out))
	}
	return f[0], nil
}

func describeEntry(we *k8s.WorkloadEntry) string {
	return fmt.Sprintf("WorkloadEntry %s/%s at %s, %s", we.Namespace, we.Name, we.Address, we.HealthText())
}

// entryWaitFloor is the least time given istiod to register the VM once the
// agent has its certificate: Envoy connects only after that.
const entryWaitFloor = 15 * time.Second

// verifyWorkloadEntry waits, within what is left of agentWait, for the
// WorkloadEntry istiod creates when the VM's proxy connects, and reports it; a
// VM with none gets the likely causes.
func (e *Env) verifyWorkloadEntry(ctx context.Context, out *Output, left time.Duration) error {
	s := e.Settings
	addr, err := e.vmAddress(ctx)
	if err != nil {
		return err
	}
	out.Logf("waiting for istiod's WorkloadEntry for %s in %s (WorkloadGroup %s)", addr, s.Namespace, s.App)
	we, err := e.WaitVMWorkloadEntry(ctx, addr, max(left, entryWaitFloor))
	if err != nil {
		return err
	}
	out.Logf("WorkloadEntry %s/%s: address %s, network %q, labels %s, %s", we.Namespace, we.Name, we.Address, we.Network, we.LabelText(), we.HealthText())
	out.Summary("%s", describeEntry(we))
	return nil
}

// WaitVMWorkloadEntry waits up to wait for the entry istiod registers for the
// VM at addr; none is an error whose hint names the likely causes.
func (e *Env) WaitVMWorkloadEntry(ctx context.Context, addr string, wait time.Duration) (*k8s.WorkloadEntry, error) {
	s := e.Settings
	we, err := e.Client.WaitWorkloadEntry(ctx, s.Namespace, s.App, addr, wait)
	if err != nil {
		return nil, fmt.Errorf("looking for the VM's WorkloadEntry: %w", err)
	}
	if we != nil {
		return we, nil
	}
	return nil, WithHint(fmt.Errorf("the agent has its certificate, but istiod registered no WorkloadEntry for %s in %s (expected %s) within %s",
		addr, s.Namespace, k8s.AutoregisteredName(s.App, addr, s.VMNetwork), wait.Round(time.Second)),
		"%s", e.missingEntryCauses(ctx, addr))
}

// missingEntryCauses names what keeps istiod from registering the VM, most
// specific first: what the cluster shows, then what it cannot.
func (e *Env) missingEntryCauses(ctx context.Context, addr string) string {
	s := e.Settings
	var causes []string
	// Unset is istiod's default (on).
	if v := e.Istiod.Env[autoregistrationEnv]; e.Istiod.Found && (v == "false" || v == "0") {
		causes = append(causes, "istiod's "+autoregistrationEnv+" is false: autoregistration is off in istiod (set it to true in istiod's env)")
	}
	if ns, err := e.Client.WorkloadGroupNamespaces(ctx, s.App); err == nil && !slices.Contains(ns, s.Namespace) {
		where := "no namespace"
		if len(ns) > 0 {
			where = strings.Join(ns, ", ")
		}
		causes = append(causes, fmt.Sprintf("WorkloadGroup %s is not in %s (found in %s): the agent names group %s in %s (run the workloadgroup step)", s.App, s.Namespace, where, s.App, s.Namespace))
	}
	if others, err := e.Client.WorkloadEntries(ctx, s.Namespace, s.App, ""); err == nil && len(others) > 0 {
		var at []string
		for _, o := range others {
			at = append(at, o.Address)
		}
		causes = append(causes, fmt.Sprintf("istiod registered group %s at %s, not %s: set vm.internalIP to the address the VM reports", s.App, strings.Join(at, ", "), addr))
	}
	causes = append(causes,
		"autoregistration may be off in istiod ("+autoregistrationEnv+"=false)",
		"the proxy may not be connected: Envoy must run on the VM and reach istiod through the agent (read /var/log/istio/istio.log for \"ADS\" lines)")
	return "likely causes: " + strings.Join(causes, "; ")
}
