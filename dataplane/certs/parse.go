// Package certs parses and checks PEM certificates, private keys and
// revocation lists for the TLS listeners.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors a caller may want to tell apart (test with errors.Is).
var (
	ErrNotPEM         = errors.New("not PEM")
	ErrEncryptedKey   = errors.New("private key is encrypted")
	ErrKeyMismatch    = errors.New("private key does not match the certificate")
	ErrUnsupportedKey = errors.New("unsupported private key type")
)

// Server is a parsed server certificate: its chain, leaf first, and the
// private key of the leaf.
type Server struct {
	// ID names the certificate in metrics and logs (the configuration's id).
	ID string
	// Certificate is ready for tls.Config.Certificates (Leaf set).
	Certificate tls.Certificate
	// Chain is the parsed chain, leaf first.
	Chain []*x509.Certificate
	// NotAfter is the earliest expiry in the chain: when the chain stops working.
	NotAfter time.Time
}

// Leaf is the certificate the private key belongs to.
func (s *Server) Leaf() *x509.Certificate { return s.Chain[0] }

// CA is a set of CA certificates that verify client certificates.
type CA struct {
	// ID names the certificates in metrics and logs (the configuration's id).
	ID    string
	Certs []*x509.Certificate
	Pool  *x509.CertPool
	// NotAfter is the earliest expiry among the certificates.
	NotAfter time.Time
}

// ParseServer parses a PEM certificate chain (leaf first, each certificate
// followed by its issuer) and the PEM private key of the leaf, and checks
// that they belong together.
func ParseServer(certPEM, keyPEM []byte) (*Server, error) {
	chain, err := ParseChain(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	return NewServer(chain, key)
}

// NewServer pairs a parsed chain with its private key. The key must match the
// first certificate, and each certificate must be signed by the next one.
func NewServer(chain []*x509.Certificate, key crypto.Signer) (*Server, error) {
	if len(chain) == 0 {
		return nil, errors.New("certificate: empty chain")
	}
	pub, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, ErrKeyMismatch
	}
	if err := checkOrder(chain); err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	raw := make([][]byte, len(chain))
	for i, c := range chain {
		raw[i] = c.Raw
	}
	return &Server{
		Certificate: tls.Certificate{Certificate: raw, PrivateKey: key, Leaf: chain[0]},
		Chain:       chain,
		NotAfter:    earliestExpiry(chain),
	}, nil
}

// checkOrder proves the chain is leaf first: certificate i is signed by i+1.
func checkOrder(chain []*x509.Certificate) error {
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return fmt.Errorf("certificate %d (%s) is not signed by certificate %d (%s): "+
				"the chain must be leaf first, each certificate followed by its issuer: %w",
				i+1, describe(chain[i]), i+2, describe(chain[i+1]), err)
		}
	}
	return nil
}

// ParseChain parses one or more PEM CERTIFICATE blocks in file order.
func ParseChain(data []byte) ([]*x509.Certificate, error) {
	blocks, err := pemBlocks(data)
	if err != nil {
		return nil, err
	}
	chain := make([]*x509.Certificate, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", i+1, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", i+1, err)
		}
		chain = append(chain, c)
	}
	return chain, nil
}

// ParseKey parses one unencrypted PEM private key: PKCS#1 RSA, SEC 1 EC or
// PKCS#8 (RSA, ECDSA, Ed25519).
func ParseKey(data []byte) (crypto.Signer, error) {
	blocks, err := pemBlocks(data)
	if err != nil {
		return nil, err
	}
	var keys []*pem.Block
	for _, b := range blocks {
		switch {
		case b.Type == "EC PARAMETERS": // written by `openssl ecparam -genkey`; the key repeats them
		case b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED"):
			return nil, fmt.Errorf("%w; xlb needs it unencrypted: convert it with "+
				"`openssl pkey -in key.pem -out key-plain.pem` and keep the result readable by root only",
				ErrEncryptedKey)
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			keys = append(keys, b)
		default:
			return nil, fmt.Errorf("PEM block %q is not a private key", b.Type)
		}
	}
	switch len(keys) {
	case 0:
		return nil, errors.New("no PRIVATE KEY block found")
	case 1:
	default:
		return nil, fmt.Errorf("%d private keys found; want exactly one", len(keys))
	}
	return parseKeyBlock(keys[0])
}

func parseKeyBlock(b *pem.Block) (crypto.Signer, error) {
	var (
		key any
		err error
	)
	switch b.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM block %q", ErrUnsupportedKey, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Type, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("%w %T: use RSA, ECDSA or Ed25519", ErrUnsupportedKey, key)
	}
}

// ParseCA parses one or more PEM CA certificates.
func ParseCA(data []byte) (*CA, error) {
	chain, err := ParseChain(data)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for i, c := range chain {
		if !c.IsCA {
			return nil, fmt.Errorf("certificate %d (%s) is not a CA certificate "+
				"(basic constraints CA:TRUE missing): it cannot sign client certificates", i+1, describe(c))
		}
		pool.AddCert(c)
	}
	return &CA{Certs: chain, Pool: pool, NotAfter: earliestExpiry(chain)}, nil
}

// ParseCRL parses one PEM X509 CRL.
func ParseCRL(data []byte) (*x509.RevocationList, error) {
	blocks, err := pemBlocks(data)
	if err != nil {
		return nil, err
	}
	if len(blocks) != 1 || blocks[0].Type != "X509 CRL" {
		return nil, fmt.Errorf("want exactly one X509 CRL block, found %s", blockTypes(blocks))
	}
	crl, err := x509.ParseRevocationList(blocks[0].Bytes)
	if err != nil {
		return nil, fmt.Errorf("X509 CRL: %w", err)
	}
	return crl, nil
}

// CheckCRL reports whether one of the CA's certificates signed the CRL.
func (ca *CA) CheckCRL(crl *x509.RevocationList) error {
	for _, c := range ca.Certs {
		if crl.CheckSignatureFrom(c) == nil {
			return nil
		}
	}
	return errors.New("the CRL is not signed by this CA")
}

// pemBlocks returns every PEM block in data. Text around the blocks (openssl's
// "Bag Attributes", comments) is ignored; data without any block is not PEM.
func pemBlocks(data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 {
		if bytes.Contains(data, []byte("-----BEGIN")) {
			return nil, fmt.Errorf("%w: a -----BEGIN line has no matching -----END line or the base64 is damaged", ErrNotPEM)
		}
		return nil, fmt.Errorf("%w: no -----BEGIN block found (DER files convert with "+
			"`openssl x509 -inform der -in cert.der -out cert.pem`)", ErrNotPEM)
	}
	return blocks, nil
}

func blockTypes(blocks []*pem.Block) string {
	types := make([]string, len(blocks))
	for i, b := range blocks {
		types[i] = b.Type
	}
	return fmt.Sprintf("%d block(s) %q", len(blocks), types)
}

func earliestExpiry(chain []*x509.Certificate) time.Time {
	t := chain[0].NotAfter
	for _, c := range chain[1:] {
		if c.NotAfter.Before(t) {
			t = c.NotAfter
		}
	}
	return t
}

// describe names a certificate for an error message.
func describe(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return "CN=" + c.Subject.CommonName
	}
	if len(c.DNSNames) > 0 {
		return "DNS:" + c.DNSNames[0]
	}
	return c.Subject.String()
}
