package steps

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/vmconfig"
)

// What the agent's log lines mean: the verdict, and the cause behind a failure.

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
	case strings.Contains(l, "certificate is valid for"):
		// Go's x509.HostnameError: the CA is right, the name is not.
		return "istiod's certificate does not name the istiod the agent dials: the VM's hosts entry and discoveryAddress must name the revision's istiod (istiod-<revision>.<namespace>.svc); run vm2mesh again with revision set to the one the VM joins"
	case strings.Contains(l, "x509") || strings.Contains(l, "unknown authority") || strings.Contains(l, "certificate signed by"):
		return "istiod's certificate does not verify with /etc/certs/root-cert.pem: the root cert is from another CA; run vm2mesh again to fetch the current one"
	case strings.Contains(l, "connection refused") || strings.Contains(l, "no route to host") || strings.Contains(l, "i/o timeout") || strings.Contains(l, "connection reset"):
		return "the agent cannot reach istiod through the gateway: check the /etc/hosts entry, the gateway address and firewalls (port 15012)"
	case strings.Contains(l, "eof") || strings.Contains(l, "connection closed") || strings.Contains(l, "broken pipe"):
		return "the agent cannot reach istiod through the gateway: the gateway took the connection on 15012 and closed it, so nothing answers behind it; check that istiod runs and that the expose-istiod step's Gateway and VirtualService exist"
	case strings.Contains(l, "no such host") || strings.Contains(l, "failed to resolve") || strings.Contains(l, "lookup istiod"):
		return "istiod's name does not resolve on the VM: the /etc/hosts entry is missing or wrong"
	case strings.Contains(l, "address already in use"):
		return "another agent still holds the agent's ports (an earlier start that did not stop): stop it (systemctl stop istio, or pkill -f pilot-agent) and run vm2mesh again"
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
