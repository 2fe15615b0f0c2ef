package testvm

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// GatewayWithoutIstiodStandIn is a STAND-IN for an east-west gateway with no
// istiod behind it: it accepts TCP on addr:15012 and closes each connection, as
// Envoy does with no healthy upstream. The VM's preflight finds the port open;
// an agent gets no istiod. It stops when the test ends.
func GatewayWithoutIstiodStandIn(t testing.TB, addr string) {
	t.Helper()
	gatewayStandIn(t, addr, func() (net.Listener, error) { return net.Listen("tcp", net.JoinHostPort(addr, "15012")) })
}

// GatewayWithoutIstiodStandInFor is GatewayWithoutIstiodStandIn where vm sees
// its gateway: for a VM behind another, that address is inside the other VM's
// network namespace, so the listener is made there.
func GatewayWithoutIstiodStandInFor(t testing.TB, vm *VM) {
	t.Helper()
	if vm.outerNetns == "" {
		GatewayWithoutIstiodStandIn(t, vm.HostAddr)
		return
	}
	gatewayStandIn(t, vm.HostAddr, func() (net.Listener, error) {
		return ListenIn(vm.outerNetns, net.JoinHostPort(vm.HostAddr, "15012"))
	})
}

func gatewayStandIn(t testing.TB, addr string, listen func() (net.Listener, error)) {
	t.Helper()
	l, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// ListenIn listens on addr inside the named network namespace (one of the
// test's own). The socket stays in that namespace; the thread that made it
// returns to the test's namespace before it is used for anything else.
func ListenIn(netns, addr string) (net.Listener, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err
	}
	defer home.Close()
	target, err := os.Open("/var/run/netns/" + netns)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("entering network namespace %s: %w", netns, err)
	}
	l, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread cannot go back: never unlock it, so it dies with the goroutine.
		runtime.LockOSThread()
		if l != nil {
			l.Close()
		}
		return nil, fmt.Errorf("leaving network namespace %s: %w", netns, err)
	}
	return l, lerr
}
