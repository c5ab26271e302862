// Package certstest makes certificates for tests at test time, so no test
// depends on committed key material or on the clock of the day it was made.
package certstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// Pair is a certificate with its private key, parsed and as PEM.
type Pair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte // PKCS#8
}

// NewCA returns a self-signed ECDSA P-256 CA valid for a day either side of now.
func NewCA(t testing.TB, cn string) *Pair {
	t.Helper()
	return issue(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}, nil, NewKey(t))
}

// NewServer returns an ECDSA P-256 server certificate for names signed by ca
// (self-signed when ca is nil).
func NewServer(t testing.TB, ca *Pair, names ...string) *Pair {
	t.Helper()
	return NewServerWithKey(t, ca, NewKey(t), names...)
}

// NewServerWithKey is NewServer with a given key (RSA, ECDSA or Ed25519).
func NewServerWithKey(t testing.TB, ca *Pair, key crypto.Signer, names ...string) *Pair {
	t.Helper()
	cn := "server"
	if len(names) > 0 {
		cn = names[0]
	}
	return issue(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              names,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, key)
}

// NewClient returns an ECDSA P-256 client certificate (client auth) for cn
// signed by ca.
func NewClient(t testing.TB, ca *Pair, cn string) *Pair {
	t.Helper()
	return issue(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, NewKey(t))
}

// NewKey returns a fresh ECDSA P-256 key.
func NewKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// KeyPEM encodes key as a PKCS#8 PEM block.
func KeyPEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// CRL returns a PEM revocation list signed by ca revoking the given
// certificates (none: an empty list).
func CRL(t testing.TB, ca *Pair, revoked ...*Pair) []byte {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, p := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: p.Cert.SerialNumber, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(1),
		ThisUpdate:                time.Now().Add(-time.Hour),
		NextUpdate:                time.Now().Add(24 * time.Hour),
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// Chain concatenates PEM certificates, in the order given.
func Chain(pairs ...*Pair) []byte {
	var out []byte
	for _, p := range pairs {
		out = append(out, p.CertPEM...)
	}
	return out
}

func issue(t testing.TB, tmpl *x509.Certificate, ca *Pair, key crypto.Signer) *Pair {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-24 * time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.Cert, ca.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Pair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  KeyPEM(t, key),
	}
}
