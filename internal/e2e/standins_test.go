package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"
)

// otherCA is the root certificate of a CA that is not the mesh's, as a VM would
// hold after its cluster's istiod was reinstalled with a new CA.
func otherCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(7),
		Subject:               pkix.Name{Organization: []string{"another mesh's CA (vm2mesh test)"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// gatewayWithoutIstiodStandIn is a STAND-IN for an east-west gateway that has no
// istiod behind it (istiod down, or not exposed): it accepts connections on
// 15012 at the gateway's address and closes them, as Envoy does with no healthy
// upstream. The VM's preflight sees the port open; the agent gets no istiod.
func gatewayWithoutIstiodStandIn(t *testing.T, gateway string) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(gateway, "15012"))
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
