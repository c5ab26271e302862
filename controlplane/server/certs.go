package server

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/store"
	"github.com/xlbproject/xlb/dataplane/certs"
)

// Certificates live in the configuration (inline PEM), so an upload or a
// delete is a new version like any change, and a delete of a certificate a
// listener uses fails validation naming that listener's field.

func (s *Server) UploadCertificate(ctx context.Context, req *xlbv1.UploadCertificateRequest) (*xlbv1.UploadCertificateResponse, error) {
	c := req.GetCertificate()
	if c == nil {
		return nil, fieldError("certificate", "required")
	}
	if c.GetCertFile() != "" || c.GetKeyFile() != "" || c.GetCrlFile() != "" {
		return nil, fieldError("certificate", "the API takes the PEM inline (cert_pem, key_pem, crl_pem), not file paths")
	}
	// Parsed here first, so a bad PEM is named by the request's own fields.
	switch c.GetType() {
	case xlbv1.Certificate_server:
		if _, err := certs.ParseServer([]byte(c.GetCertPem()), []byte(c.GetKeyPem())); err != nil {
			return nil, fieldError("certificate.cert_pem", err.Error())
		}
	case xlbv1.Certificate_ca:
		if _, err := certs.ParseCA([]byte(c.GetCertPem())); err != nil {
			return nil, fieldError("certificate.cert_pem", err.Error())
		}
	default:
		return nil, fieldError("certificate.type", "required: server or ca")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		return nil, status.Error(codes.Unavailable, "no configuration is running yet")
	}
	cfg := proto.Clone(s.running).(*xlbv1.Config)
	i := slices.IndexFunc(cfg.Certificates, func(x *xlbv1.Certificate) bool { return x.GetId() == c.GetId() })
	if i >= 0 {
		cfg.Certificates[i] = c
	} else {
		cfg.Certificates = append(cfg.Certificates, c)
	}
	v, _, err := s.changeLocked(ctx, cfg, store.Record{Source: "api upload certificate " + c.GetId()}, req.GetExpectedVersion())
	if err != nil {
		return nil, toStatus(err)
	}
	return &xlbv1.UploadCertificateResponse{Version: v, Certificate: describeCert(s.running, c)}, nil
}

func (s *Server) ListCertificates(context.Context, *xlbv1.ListCertificatesRequest) (*xlbv1.ListCertificatesResponse, error) {
	cfg, _ := s.Running()
	out := &xlbv1.ListCertificatesResponse{}
	for _, c := range cfg.GetCertificates() {
		out.Certificates = append(out.Certificates, describeCert(cfg, c))
	}
	return out, nil
}

func (s *Server) DeleteCertificate(ctx context.Context, req *xlbv1.DeleteCertificateRequest) (*xlbv1.ApplyResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		return nil, status.Error(codes.Unavailable, "no configuration is running yet")
	}
	cfg := proto.Clone(s.running).(*xlbv1.Config)
	i := slices.IndexFunc(cfg.Certificates, func(x *xlbv1.Certificate) bool { return x.GetId() == req.GetId() })
	if i < 0 {
		return nil, status.Errorf(codes.NotFound, "no certificate %q", req.GetId())
	}
	cfg.Certificates = slices.Delete(cfg.Certificates, i, i+1)
	v, changes, err := s.changeLocked(ctx, cfg, store.Record{Source: "api delete certificate " + req.GetId()}, req.GetExpectedVersion())
	if err != nil {
		return nil, toStatus(err)
	}
	return &xlbv1.ApplyResponse{Version: v, Changes: changes}, nil
}

// describeCert says what a certificate is, never what its key is.
func describeCert(cfg *xlbv1.Config, c *xlbv1.Certificate) *xlbv1.CertificateInfo {
	info := &xlbv1.CertificateInfo{Id: c.GetId(), Type: c.GetType(), HasKey: c.GetKeyPem() != ""}
	if chain, err := certs.ParseChain([]byte(c.GetCertPem())); err == nil && len(chain) > 0 {
		leaf := chain[0]
		info.Subject = leaf.Subject.String()
		info.Issuer = leaf.Issuer.String()
		info.DnsNames = leaf.DNSNames
		info.NotBefore = timestamppb.New(leaf.NotBefore)
		info.NotAfter = timestamppb.New(earliest(chain))
	}
	for _, lb := range cfg.GetLoadBalancers() {
		for _, l := range lb.GetListeners() {
			t := l.GetTls()
			if slices.Contains(t.GetCertificates(), c.GetId()) || (t.GetCa() != "" && t.GetCa() == c.GetId()) {
				info.UsedBy = append(info.UsedBy, fmt.Sprintf("%s/%s/%d", lb.GetId(), l.GetProtocol(), l.GetPort()))
			}
		}
	}
	return info
}

func earliest(chain []*x509.Certificate) time.Time {
	t := chain[0].NotAfter
	for _, c := range chain[1:] {
		if c.NotAfter.Before(t) {
			t = c.NotAfter
		}
	}
	return t
}
