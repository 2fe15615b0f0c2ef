package testcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Main starts one cluster for a test package, runs its tests and stops it. The
// cluster is shared: each test works in namespaces of its own.
func Main(m *testing.M, into **Cluster) int {
	dir, err := os.MkdirTemp("", "vm2mesh-testcluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c, err := Start(ctx, dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testcluster: %v\n", err)
		return 1
	}
	defer c.Stop()
	*into = c
	return m.Run()
}

// IstioCRDs is the path of Istio's own CRDs, shipped in the istio.io/api module.
func IstioCRDs() (string, error) {
	dir, err := ModuleDir("", "istio.io/api")
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "kubernetes", "customresourcedefinitions.gen.yaml"), nil
}
