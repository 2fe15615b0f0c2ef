package testvm

import (
	"net"
	"testing"
)

// GatewayWithoutIstiodStandIn is a STAND-IN for an east-west gateway with no
// istiod behind it: it accepts TCP on addr:15012 and closes each connection, as
// Envoy does with no healthy upstream. The VM's preflight finds the port open;
// an agent gets no istiod. It stops when the test ends.
func GatewayWithoutIstiodStandIn(t testing.TB, addr string) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "15012"))
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
