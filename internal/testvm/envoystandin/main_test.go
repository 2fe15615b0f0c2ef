package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
)

// adsRecorder is a STAND-IN for the agent's XDS proxy: it records the requests
// of one stream and answers the first.
type adsRecorder struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	got chan *discoveryv3.DiscoveryRequest
}

func (a *adsRecorder) StreamAggregatedResources(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	for i := 0; ; i++ {
		req, err := s.Recv()
		if err != nil {
			return err
		}
		a.got <- req
		if i == 0 {
			if err := s.Send(&discoveryv3.DiscoveryResponse{TypeUrl: req.TypeUrl, VersionInfo: "v1", Nonce: "n1"}); err != nil {
				return err
			}
		}
	}
}

// The bootstrap as pilot-agent writes it (the parts read here): the node with
// its metadata, and the xds-grpc cluster on a unix socket relative to the cwd.
const bootstrapJSON = `{
  "node": {"id": "sidecar~192.0.2.20~vm.vm-ns~vm-ns.svc.cluster.local", "cluster": "demo.vm-ns",
    "locality": {}, "metadata": {"NAMESPACE": "vm-ns", "AUTO_REGISTER_GROUP": "demo", "INSTANCE_IPS": "192.0.2.20", "LABELS": {"app": "demo"}}},
  "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}},
  "static_resources": {"clusters": [
    {"name": "prometheus_stats", "load_assignment": {"endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}}}]}]}},
    {"name": "xds-grpc", "type": "STATIC", "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": "./etc/istio/proxy/XDS"}}}}]}]}}
  ]}
}`

func TestStreamsTheBootstrapNodeToTheXDSProxyAndACKs(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll("etc/istio/proxy", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(defaultBootstrap, []byte(bootstrapJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "etc/istio/proxy/XDS"))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	rec := &adsRecorder{got: make(chan *discoveryv3.DiscoveryRequest, 10)}
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, rec)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()

	node, socket, err := readBootstrap(defaultBootstrap)
	if err != nil {
		t.Fatal(err)
	}
	if socket != filepath.Join(dir, "etc/istio/proxy/XDS") {
		t.Errorf("socket %s", socket)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- stream(ctx, node, socket) }()

	first := <-rec.got
	md := first.GetNode().GetMetadata().GetFields()
	if first.GetNode().GetId() != "sidecar~192.0.2.20~vm.vm-ns~vm-ns.svc.cluster.local" || first.GetNode().GetCluster() != "demo.vm-ns" ||
		md["AUTO_REGISTER_GROUP"].GetStringValue() != "demo" || md["LABELS"].GetStructValue().GetFields()["app"].GetStringValue() != "demo" {
		t.Errorf("first request's node: %v", first.GetNode())
	}
	if first.TypeUrl != clusterType {
		t.Errorf("first request asks for %s", first.TypeUrl)
	}
	select {
	case ack := <-rec.got:
		if ack.ResponseNonce != "n1" || ack.VersionInfo != "v1" {
			t.Errorf("ACK: %v", ack)
		}
	case <-ctx.Done():
		t.Fatal("no ACK")
	}
	cancel()
	if err := <-done; err == nil {
		t.Error("the stream ended without an error")
	}
}
