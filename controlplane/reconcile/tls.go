package reconcile

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/certs"
)

// tlsCompiler parses the configuration's certificates for the https
// listeners, each once per compile (listeners share them).
type tlsCompiler struct {
	byID    map[string]*xlbv1.Certificate
	servers map[string]*certs.Server
	cas     map[string]*certs.CA
	crls    map[string]*x509.RevocationList
}

func newTLSCompiler(cfg *xlbv1.Config) *tlsCompiler {
	tc := &tlsCompiler{byID: map[string]*xlbv1.Certificate{}, servers: map[string]*certs.Server{},
		cas: map[string]*certs.CA{}, crls: map[string]*x509.RevocationList{}}
	for _, c := range cfg.GetCertificates() {
		tc.byID[c.GetId()] = c
	}
	return tc
}

// listener compiles an https listener's tls block; errors start with the
// field relative to it.
func (tc *tlsCompiler) listener(t *xlbv1.Tls) (*certs.Settings, error) {
	if t == nil || len(t.GetCertificates()) == 0 {
		return nil, fmt.Errorf("certificates: an https listener needs at least one server certificate")
	}
	s := &certs.Settings{Mutual: t.GetMutual()}
	for i, id := range t.GetCertificates() {
		srv, err := tc.server(id)
		if err != nil {
			return nil, fmt.Errorf("certificates[%d]: %w", i, err)
		}
		s.Certificates = append(s.Certificates, srv)
	}
	if id := t.GetCa(); id != "" {
		ca, crl, err := tc.ca(id)
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		s.ClientCA, s.CRL = ca, crl
	}
	switch v := t.GetMinVersion(); v {
	case "", "1.2":
		s.MinVersion = tls.VersionTLS12
	case "1.3":
		s.MinVersion = tls.VersionTLS13
	default:
		return nil, fmt.Errorf("min_version: %q is not \"1.2\" or \"1.3\"", v)
	}
	if s.Mutual && s.ClientCA == nil {
		return nil, fmt.Errorf("mutual: requires ca")
	}
	return s, nil
}

func (tc *tlsCompiler) server(id string) (*certs.Server, error) {
	if s := tc.servers[id]; s != nil {
		return s, nil
	}
	c := tc.byID[id]
	if c == nil || c.GetType() != xlbv1.Certificate_server {
		return nil, fmt.Errorf("%q is not a server certificate of certificates", id)
	}
	s, err := certs.ParseServer([]byte(c.GetCertPem()), []byte(c.GetKeyPem()))
	if err != nil {
		return nil, fmt.Errorf("certificate %q: %w", id, err)
	}
	s.ID = id
	tc.servers[id] = s
	return s, nil
}

func (tc *tlsCompiler) ca(id string) (*certs.CA, *x509.RevocationList, error) {
	if ca := tc.cas[id]; ca != nil {
		return ca, tc.crls[id], nil
	}
	c := tc.byID[id]
	if c == nil || c.GetType() != xlbv1.Certificate_ca {
		return nil, nil, fmt.Errorf("%q is not a ca certificate of certificates", id)
	}
	ca, err := certs.ParseCA([]byte(c.GetCertPem()))
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %q: %w", id, err)
	}
	ca.ID = id
	var crl *x509.RevocationList
	if c.GetCrlPem() != "" {
		if crl, err = certs.ParseCRL([]byte(c.GetCrlPem())); err != nil {
			return nil, nil, fmt.Errorf("certificate %q: crl: %w", id, err)
		}
		if err := ca.CheckCRL(crl); err != nil {
			return nil, nil, fmt.Errorf("certificate %q: crl: %w", id, err)
		}
	}
	tc.cas[id], tc.crls[id] = ca, crl
	return ca, crl, nil
}
