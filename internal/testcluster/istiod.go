package testcluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Istiod is the real istiod (pilot-discovery, built from the istio.io/istio
// module by hack/tools/istio) running outside the cluster against it.
type Istiod struct {
	SecureGRPC string // host:port of its XDS and CA
	Log        string
}

// StartIstiod runs pilot-discovery with every listener on ip (127.0.0.1 unless
// a test's own namespace address is given: its defaults listen on all
// interfaces). It creates its self-signed CA and writes istio-ca-root-cert into
// every namespace. It stops when the test ends.
func (c *Cluster) StartIstiod(t testing.TB, bin, ip string) *Istiod {
	t.Helper()
	if ip == "" {
		ip = "127.0.0.1"
	}
	var ports []int
	for range 6 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		l.Close()
	}
	addr := func(i int) string { return net.JoinHostPort(ip, strconv.Itoa(ports[i])) }
	dir := t.TempDir()
	cmd := exec.Command(bin, "discovery", "--kubeconfig", c.Kubeconfig,
		"--httpAddr", addr(0), "--httpsAddr", addr(1), "--grpcAddr", addr(2), "--secureGRPCAddr", addr(3),
		"--monitoringAddr", addr(4), "--ctrlz_address", ip, "--ctrlz_port", strconv.Itoa(ports[5]))
	cmd.Env = append(os.Environ(), "POD_NAMESPACE=istio-system", "POD_NAME=istiod-testcluster", "REVISION=default")
	cmd.Dir = dir
	log := filepath.Join(dir, "istiod.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	is := &Istiod{SecureGRPC: addr(3), Log: log}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		if conn, err := net.DialTimeout("tcp", is.SecureGRPC, time.Second); err == nil {
			conn.Close()
			return is
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(log)
			t.Fatalf("istiod exited:\n%s", LastLines(string(out), 30))
		case <-time.After(200 * time.Millisecond):
		}
	}
	out, _ := os.ReadFile(log)
	t.Fatal(fmt.Errorf("istiod did not listen on %s within a minute:\n%s", is.SecureGRPC, LastLines(string(out), 30)))
	return nil
}
