package steps

import (
	"context"
	"errors"

	"github.com/vm2mesh/vm2mesh/remote"
)

// Who owns what on the VM. The agent runs as istio-proxy, which owns the
// directories it reads and writes (/etc/certs, /var/lib/istio/*, /var/log/istio,
// the token's directory). Anything there can be a link that istio-proxy planted,
// so root never reads, writes or copies there by name: what must happen there
// runs as istio-proxy (remote.Cmd.As, as_user in scripts), and vm2mesh's own
// backups and markers live in a directory only root can enter.

// agentUser is the user the sidecar package creates and the agent runs as.
const agentUser = "istio-proxy"

// vmStateDir is vm2mesh's own directory on the VM (root, 0700): the package
// marker, and under prev/ the files it replaced.
const (
	vmStateDir = "/var/lib/vm2mesh"
	vmPrevDir  = vmStateDir + "/prev"
)

// asAgent reads (or does) something among the agent's files, as the agent.
func (e *Env) asAgent(ctx context.Context, line string) (string, error) {
	return e.VM.Exec(ctx, remote.Cmd{Line: line, As: agentUser})
}

// noAgentUser says the command failed because istio-proxy does not exist yet
// (the package is not installed): there is nothing of the agent's to read.
func noAgentUser(err error) bool {
	var exit *remote.ExitError
	return errors.As(err, &exit) && exit.Code == remote.ExitNoUser
}
