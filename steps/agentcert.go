package steps

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"slices"
	"strings"
)

// The certificates on the VM: the root vm2mesh places and the one the agent got.

// The certificate the agent got last, and its key: istio-start.sh's
// OUTPUT_CERTS writes them to /etc/certs, and its PROV_CERT makes the agent
// authenticate to the CA with them, in preference to the token, once they exist.
const (
	agentCertPath = "/etc/certs/cert-chain.pem"
	agentKeyPath  = "/etc/certs/key.pem"
)

// staleAgentCert says whether the VM holds a certificate from the agent that
// the root cert being placed does not verify (another CA's, or expired). Left in
// place, the agent would present it and istiod would refuse the connection.
func staleAgentCert(ctx context.Context, env *Env) (bool, string, error) {
	chain, err := env.asAgent(ctx, "cat "+agentCertPath+" 2>/dev/null; true")
	if noAgentUser(err) {
		return false, "", nil // no package yet, so no agent and no certificate of its
	}
	if err != nil || strings.TrimSpace(chain) == "" {
		return false, "", err
	}
	root, err := os.ReadFile(env.File("root-cert.pem"))
	if err != nil {
		return false, "", err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(root) {
		return false, "", nil // no certificates to judge by
	}
	certs := parseCertificates([]byte(chain))
	if len(certs) == 0 {
		return true, "holds no certificate", nil
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err = certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	var expired x509.CertificateInvalidError
	switch {
	case err == nil:
		return false, "", nil
	case errors.As(err, &expired) && expired.Reason == x509.Expired:
		return true, "expired", nil
	default:
		return true, "is from another CA", nil
	}
}

func parseCertificates(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for _, der := range certificateDER(data) {
		if c, err := x509.ParseCertificate(der); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// certificateDER is the CERTIFICATE blocks of a PEM file, in order.
func certificateDER(data []byte) [][]byte {
	var out [][]byte
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out
		}
		if block.Type == "CERTIFICATE" {
			out = append(out, block.Bytes)
		}
	}
}

// sameCertificates says whether two PEM files hold the same certificates. The
// agent rewrites /etc/certs/root-cert.pem with the root its CA answered
// (istio-start.sh's OUTPUT_CERTS), the same certificate in other bytes: that is
// not a change to undo.
func sameCertificates(a, b []byte) bool {
	set := func(data []byte) []string {
		var out []string
		for _, der := range certificateDER(data) {
			out = append(out, string(der))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	sa, sb := set(a), set(b)
	if len(sa) == 0 || len(sb) == 0 {
		return bytes.Equal(a, b) // not certificates: only the same bytes are the same
	}
	return slices.Equal(sa, sb)
}
