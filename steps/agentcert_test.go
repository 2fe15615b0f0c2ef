package steps

import (
	"strings"
	"testing"
)

func TestSameCertificates(t *testing.T) {
	a := "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n"
	b := "-----BEGIN CERTIFICATE-----\nMIIBAQ==\n-----END CERTIFICATE-----\n"
	for _, tc := range []struct {
		x, y string
		want bool
	}{
		{a, a, true},
		{a, strings.TrimSuffix(a, "\n"), true}, // the agent's rewrite: same certificate, other bytes
		{a + b, b + a, true},
		{a, b, false},
		{a, a + b, false},
		{"NOT PEM", "NOT PEM", true},
		{"NOT PEM", "NOT PEM\n", false},
		{a, "", false},
	} {
		if got := sameCertificates([]byte(tc.x), []byte(tc.y)); got != tc.want {
			t.Errorf("sameCertificates(%q, %q) = %v", tc.x, tc.y, got)
		}
	}
}
