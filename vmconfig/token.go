package vmconfig

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// TokenClaims are the claims of a service account token that matter to a VM.
type TokenClaims struct {
	Audience []string `json:"aud"`
	Subject  string   `json:"sub"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	Issuer   string   `json:"iss"`
}

// ExpiresAt is when the token stops being accepted.
func (c TokenClaims) ExpiresAt() time.Time { return time.Unix(c.Expiry, 0) }

// ParseTokenClaims reads a JWT's claims without verifying its signature: the API
// server made it, and istiod verifies it.
func ParseTokenClaims(token string) (TokenClaims, error) {
	var c TokenClaims
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return c, fmt.Errorf("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, fmt.Errorf("JWT payload: %w", err)
	}
	return c, json.Unmarshal(payload, &c)
}
