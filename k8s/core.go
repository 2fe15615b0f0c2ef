package k8s

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// IstioCAAudience is the audience istiod's CA accepts on a workload's token.
const IstioCAAudience = "istio-ca"

// RootCertConfigMap is the ConfigMap istiod writes into every namespace.
const RootCertConfigMap = "istio-ca-root-cert"

// CRLConfigMap is the ConfigMap istiod writes beside RootCertConfigMap in every
// namespace (PILOT_CRL_CONFIGMAP's default): like it, no sign of a user.
const CRLConfigMap = "istio-ca-crl"

// EnsureNamespace creates the namespace when it is missing; it never changes or
// deletes one. created says whether it did anything.
func (c *Client) EnsureNamespace(ctx context.Context, name string) (created bool, err error) {
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	_, err = c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}, metav1.CreateOptions{FieldManager: FieldManager})
	if apierrors.IsAlreadyExists(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return true, nil
}

// EnsureServiceAccount creates the service account when it is missing.
func (c *Client) EnsureServiceAccount(ctx context.Context, namespace, name string) (created bool, err error) {
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	_, err = c.Kube.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
	}, metav1.CreateOptions{FieldManager: FieldManager})
	if apierrors.IsAlreadyExists(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("creating service account %s/%s: %w", namespace, name, err)
	}
	return true, nil
}

// NamespaceExists and ServiceAccountExists are the checks behind "already done".
func (c *Client) NamespaceExists(ctx context.Context, name string) (bool, error) {
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	_, err := c.Kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	return found(err)
}

func (c *Client) ServiceAccountExists(ctx context.Context, namespace, name string) (bool, error) {
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	_, err := c.Kube.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
	return found(err)
}

func found(err error) (bool, error) {
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// Token asks the API server for a token of the service account, bound to the
// audience, valid for seconds.
func (c *Client) Token(ctx context.Context, namespace, serviceAccount, audience string, seconds int64) (string, error) {
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	req := &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         []string{audience},
			ExpirationSeconds: &seconds,
		},
	}
	resp, err := c.Kube.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, serviceAccount, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("could not create a token for service account %s in namespace %s: %w", serviceAccount, namespace, err)
	}
	return resp.Status.Token, nil
}

// ConfigMap reads one ConfigMap; a missing one is (nil, nil).
func (c *Client) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	cm, err := c.Kube.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return cm, err
}

// WaitConfigMapKey waits until the ConfigMap exists and holds key, or the timeout
// passes. istiod writes istio-ca-root-cert a moment after a namespace appears.
func (c *Client) WaitConfigMapKey(ctx context.Context, namespace, name, key string, timeout time.Duration) (string, error) {
	var value string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		cm, err := c.ConfigMap(ctx, namespace, name)
		if err != nil || cm == nil {
			return false, err
		}
		v, ok := cm.Data[key]
		value = v
		return ok, nil
	})
	if err != nil {
		return "", fmt.Errorf("ConfigMap %s/%s with key %s did not appear within %s: istiod writes it into every namespace; is istiod running and healthy? (%w)",
			namespace, name, key, timeout, err)
	}
	return value, nil
}
