package certs_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/xlbproject/xlb/dataplane/certs"
	"github.com/xlbproject/xlb/dataplane/certs/certstest"
)

func TestParseServerKeyFormats(t *testing.T) {
	ca := certstest.NewCA(t, "test CA")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey := certstest.NewKey(t)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		key    crypto.Signer
		keyPEM []byte
	}{
		{"rsa pkcs1", rsaKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})},
		{"rsa pkcs8", rsaKey, certstest.KeyPEM(t, rsaKey)},
		{"ecdsa sec1 with parameters", ecKey, append(
			pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})...)},
		{"ecdsa pkcs8", ecKey, certstest.KeyPEM(t, ecKey)},
		{"ed25519 pkcs8", edKey, certstest.KeyPEM(t, edKey)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := certstest.NewServerWithKey(t, ca, tt.key, "www.example.com")
			s, err := certs.ParseServer(certstest.Chain(leaf, ca), tt.keyPEM)
			if err != nil {
				t.Fatalf("ParseServer: %v", err)
			}
			if len(s.Chain) != 2 || s.Leaf().Subject.CommonName != "www.example.com" {
				t.Fatalf("chain = %d certificates, leaf %q", len(s.Chain), s.Leaf().Subject.CommonName)
			}
			if len(s.Certificate.Certificate) != 2 || s.Certificate.Leaf != s.Leaf() || s.Certificate.PrivateKey == nil {
				t.Fatalf("tls.Certificate incomplete: %+v", s.Certificate)
			}
			want := leaf.Cert.NotAfter
			if ca.Cert.NotAfter.Before(want) {
				want = ca.Cert.NotAfter
			}
			if !s.NotAfter.Equal(want) {
				t.Fatalf("NotAfter = %v, want %v", s.NotAfter, want)
			}
		})
	}
}

func TestParseServerErrors(t *testing.T) {
	ca := certstest.NewCA(t, "test CA")
	otherCA := certstest.NewCA(t, "other CA")
	leaf := certstest.NewServer(t, ca, "www.example.com")
	der := leaf.Cert.Raw
	tests := []struct {
		name          string
		certPEM, key  []byte
		is            error
		wantInMessage string
	}{
		{"key of another certificate", leaf.CertPEM, certstest.KeyPEM(t, certstest.NewKey(t)),
			certs.ErrKeyMismatch, "private key does not match the certificate"},
		{"issuer before leaf", certstest.Chain(ca, leaf), leaf.KeyPEM,
			certs.ErrKeyMismatch, "does not match"},
		{"chain not in issuer order", certstest.Chain(leaf, otherCA), leaf.KeyPEM,
			nil, "is not signed by certificate 2 (CN=other CA)"},
		{"legacy encrypted key", leaf.CertPEM, pem.EncodeToMemory(&pem.Block{
			Type:    "EC PRIVATE KEY",
			Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00112233445566778899AABBCCDDEEFF"},
			Bytes:   []byte("ciphertext")}),
			certs.ErrEncryptedKey, "openssl pkey -in key.pem -out key-plain.pem"},
		{"pkcs8 encrypted key", leaf.CertPEM, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("x")}),
			certs.ErrEncryptedKey, "openssl pkey"},
		{"DER certificate", der, leaf.KeyPEM, certs.ErrNotPEM, "certificate: not PEM"},
		{"garbage key", leaf.CertPEM, []byte("hello"), certs.ErrNotPEM, "private key: not PEM"},
		{"truncated PEM", leaf.CertPEM[:len(leaf.CertPEM)-20], leaf.KeyPEM, certs.ErrNotPEM, "no matching -----END"},
		{"certificate in the key file", leaf.CertPEM, leaf.CertPEM, nil, `"CERTIFICATE" is not a private key`},
		{"key in the certificate file", leaf.KeyPEM, leaf.KeyPEM, nil, `is "PRIVATE KEY", want CERTIFICATE`},
		{"two keys", leaf.CertPEM, append(append([]byte{}, leaf.KeyPEM...), leaf.KeyPEM...), nil, "2 private keys"},
		{"damaged certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), leaf.KeyPEM, nil, "PEM block 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := certs.ParseServer(tt.certPEM, tt.key)
			if err == nil {
				t.Fatal("ParseServer accepted it")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.wantInMessage) {
				t.Errorf("error %q does not say %q", err, tt.wantInMessage)
			}
		})
	}
}

func TestParseCA(t *testing.T) {
	ca := certstest.NewCA(t, "clients")
	c, err := certs.ParseCA(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	client := certstest.NewServer(t, ca, "client")
	if _, err := client.Cert.Verify(x509.VerifyOptions{Roots: c.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("the pool does not verify a certificate the CA signed: %v", err)
	}
	if !c.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("NotAfter = %v, want %v", c.NotAfter, ca.Cert.NotAfter)
	}
	if _, err := certs.ParseCA(client.CertPEM); err == nil || !strings.Contains(err.Error(), "is not a CA certificate") {
		t.Errorf("a leaf certificate as CA: err = %v", err)
	}
	if _, err := certs.ParseCA([]byte("not a pem")); !errors.Is(err, certs.ErrNotPEM) {
		t.Errorf("garbage: err = %v, want ErrNotPEM", err)
	}
}

func TestParseCRL(t *testing.T) {
	ca := certstest.NewCA(t, "clients")
	other := certstest.NewCA(t, "other")
	crl, err := certs.ParseCRL(certstest.CRL(t, ca))
	if err != nil {
		t.Fatal(err)
	}
	parsedCA, err := certs.ParseCA(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := parsedCA.CheckCRL(crl); err != nil {
		t.Errorf("CheckCRL with its own CA: %v", err)
	}
	otherCA, err := certs.ParseCA(other.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := otherCA.CheckCRL(crl); err == nil {
		t.Error("CheckCRL accepted a CRL signed by another CA")
	}
	if _, err := certs.ParseCRL(ca.CertPEM); err == nil || !strings.Contains(err.Error(), "X509 CRL") {
		t.Errorf("a certificate as CRL: err = %v", err)
	}
}
