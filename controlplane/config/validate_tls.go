package config

import (
	"errors"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/certs"
)

func (v *validator) certificates(list []*xlbv1.Certificate) {
	seen := map[string]string{}
	for i, c := range list {
		p := index("certificates", i)
		v.checkID(field(p, "id"), c.Id, seen)
		if _, dup := v.certs[c.Id]; !dup && c.Id != "" {
			v.certs[c.Id] = c
		}
		certPath := pemPath(p, "cert", c.CertFile, c.CertPem)
		keyPath := pemPath(p, "key", c.KeyFile, c.KeyPem)
		crlPath := pemPath(p, "crl", c.CrlFile, c.CrlPem)
		hasCert := c.CertFile != "" || c.CertPem != ""
		hasKey := c.KeyFile != "" || c.KeyPem != ""
		hasCRL := c.CrlFile != "" || c.CrlPem != ""
		switch c.Type {
		case xlbv1.Certificate_server:
			if !hasCert {
				v.add(certPath, "required for a server certificate (cert_file or cert_pem)")
			}
			if !hasKey {
				v.add(keyPath, "required for a server certificate (key_file or key_pem)")
			}
			if hasCRL {
				v.add(crlPath, "only ca certificates have a revocation list")
			}
			v.serverPEM(c, certPath, keyPath)
		case xlbv1.Certificate_ca:
			if !hasCert {
				v.add(certPath, "required for a ca certificate (cert_file or cert_pem)")
			}
			if hasKey {
				v.add(keyPath, "a ca certificate only verifies clients: give its certificate, never its private key")
			}
			v.caPEM(c, certPath, crlPath)
		default:
			v.add(field(p, "type"), "required: server or ca")
		}
	}
}

// pemPath names the field a certificate part came from: the file the user
// wrote, or else the inline PEM; the file when neither is set.
func pemPath(p, part, file, pem string) string {
	if file == "" && pem != "" {
		return field(p, part+"_pem")
	}
	return field(p, part+"_file")
}

// serverPEM checks the chain and key when their PEM is at hand.
func (v *validator) serverPEM(c *xlbv1.Certificate, certPath, keyPath string) {
	if c.CertPem == "" || c.KeyPem == "" {
		return
	}
	certErr, keyErr := checkServerPEM([]byte(c.CertPem), []byte(c.KeyPem))
	if certErr != nil {
		v.add(certPath, "%v", certErr)
	}
	if keyErr != nil {
		v.add(keyPath, "%v", keyErr)
	}
}

// checkServerPEM parses a chain and its key and tells which of the two is
// wrong: a key that does not match is the key's fault, a chain out of order
// the chain's.
func checkServerPEM(certPEM, keyPEM []byte) (certErr, keyErr error) {
	chain, certErr := certs.ParseChain(certPEM)
	key, keyErr := certs.ParseKey(keyPEM)
	if certErr != nil || keyErr != nil {
		return certErr, keyErr
	}
	if _, err := certs.NewServer(chain, key); err != nil {
		if errors.Is(err, certs.ErrKeyMismatch) {
			return nil, err
		}
		return err, nil
	}
	return nil, nil
}

func (v *validator) caPEM(c *xlbv1.Certificate, certPath, crlPath string) {
	if c.CertPem == "" {
		return
	}
	ca, err := certs.ParseCA([]byte(c.CertPem))
	if err != nil {
		v.add(certPath, "%v", err)
		return
	}
	if c.CrlPem == "" {
		return
	}
	crl, err := certs.ParseCRL([]byte(c.CrlPem))
	if err != nil {
		v.add(crlPath, "%v", err)
		return
	}
	if err := ca.CheckCRL(crl); err != nil {
		v.add(crlPath, "%v", err)
	}
}

// listenerTLS checks an https listener's tls block.
func (v *validator) listenerTLS(p string, t *xlbv1.Tls) {
	if t == nil {
		v.add(p, "required for an https listener: at least one server certificate")
		return
	}
	cp := field(p, "certificates")
	if len(t.Certificates) == 0 {
		v.add(cp, "an https listener needs at least one server certificate")
	}
	seen := map[string]int{}
	for i, id := range t.Certificates {
		ip := index(cp, i)
		if first, dup := seen[id]; dup {
			v.add(ip, "%q is already listed as certificates[%d]", id, first)
			continue
		}
		seen[id] = i
		switch c := v.certs[id]; {
		case c == nil:
			v.add(ip, "%q is not defined in certificates", id)
		case c.Type != xlbv1.Certificate_server:
			v.add(ip, "%q is a %s certificate, not a server certificate", id, c.Type)
		}
	}
	if t.Ca != "" {
		switch c := v.certs[t.Ca]; {
		case c == nil:
			v.add(field(p, "ca"), "%q is not defined in certificates", t.Ca)
		case c.Type != xlbv1.Certificate_ca:
			v.add(field(p, "ca"), "%q is a %s certificate, not a ca certificate", t.Ca, c.Type)
		}
	}
	if t.Mutual && t.Ca == "" {
		v.add(field(p, "mutual"), "requires ca: the certificate that signs the client certificates")
	}
	if t.MinVersion != "1.2" && t.MinVersion != "1.3" {
		v.add(field(p, "min_version"), "%q is not \"1.2\" or \"1.3\"", t.MinVersion)
	}
}
