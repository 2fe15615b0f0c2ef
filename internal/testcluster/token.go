package testcluster

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"time"
)

// BackdatedToken takes a token the API server issued (TokenRequest) and signs it
// again with the API server's own service-account key, its iat, nbf and exp moved
// back by age: the token the API server would have issued that long ago. The API
// server issues no token shorter than 10 minutes, so this is how a test holds an
// expired one without waiting.
func (c *Cluster) BackdatedToken(issued string, age time.Duration) (string, error) {
	parts := strings.Split(issued, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", err
	}
	for _, k := range []string{"iat", "nbf", "exp"} {
		if v, ok := claims[k].(float64); ok {
			claims[k] = int64(v) - int64(age/time.Second)
		}
	}
	payload, err = json.Marshal(claims)
	if err != nil {
		return "", err
	}
	keyPEM, err := os.ReadFile(c.saKeyFile)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return "", errors.New("no PEM in the service-account key")
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		return "", err
	}
	// The header (alg RS256, kid of this key) stays as the API server wrote it.
	signed := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
