package config_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/xlbproject/xlb/controlplane/config"
)

func TestLoadFileReadsCertificates(t *testing.T) {
	dir := certDir(t)
	yaml := certsYAML + `
node:
  control:
    listen: "tcp://127.0.0.1:9443"
    tls: {cert_file: server.pem, key_file: server-key.pem, client_ca_file: ca.pem}
load_balancers:
  - id: lb
    address: 203.0.113.10
    listeners: [{protocol: https, port: 443, tls: {certificates: [www], ca: clients, mutual: true}}]
`
	path := filepath.Join(dir, "xlb.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	server, _ := os.ReadFile(filepath.Join(dir, "server.pem"))
	www := cfg.Certificates[0]
	if www.CertPem != string(server) || !strings.Contains(www.KeyPem, "PRIVATE KEY") {
		t.Error("the certificate files were not read into cert_pem and key_pem")
	}
	if www.CertFile != "server.pem" {
		t.Errorf("cert_file = %q, want it as written", www.CertFile)
	}
	if !strings.Contains(cfg.Certificates[1].CrlPem, "X509 CRL") {
		t.Error("crl_file was not read")
	}
	if got := cfg.Node.Control.Tls.ClientCaFile; got != filepath.Join(dir, "ca.pem") {
		t.Errorf("control client_ca_file = %q, want it resolved against the file's directory", got)
	}
}

func TestLoadFileErrors(t *testing.T) {
	if _, err := config.LoadFile(filepath.Join(t.TempDir(), "none.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
	dir := certDir(t)
	_, err := config.Load([]byte(`
node:
  control:
    listen: "tcp://127.0.0.1:9443"
    tls: {cert_file: server.pem, key_file: other-key.pem, client_ca_file: missing.pem}
`), dir)
	errs := fieldErrors(t, err)
	for path, want := range map[string]string{
		"node.control.tls.key_file":       "private key does not match the certificate",
		"node.control.tls.client_ca_file": "no such file",
	} {
		if findError(errs, path, want) == nil {
			t.Errorf("no error on %s saying %q:\n%v", path, want, err)
		}
	}
}

// Validation errors carry the line of the field, or of the nearest written
// ancestor when the field itself came from a default.
func TestValidationErrorLines(t *testing.T) {
	_, err := config.Load([]byte(`load_balancers:
  - id: lb
    address: 203.0.113.10
    listeners:
      - protocol: udp
        port: 53
        health_check:
          type: udp
      - protocol: http
        port: 53
        persistence: {type: source_ip}
`), ".")
	errs := fieldErrors(t, err)
	for _, tt := range []struct {
		path string
		line int
	}{
		{"load_balancers[0].listeners[0].health_check.request", 7},
		{"load_balancers[0].listeners[1].persistence.type", 11},
	} {
		e := findError(errs, tt.path, "")
		if e == nil {
			t.Errorf("no error on %s:\n%v", tt.path, err)
		} else if e.Line != tt.line {
			t.Errorf("%s: line %d, want %d", tt.path, e.Line, tt.line)
		}
	}
}

func TestDecodeFileInlinesCertificatesWithoutDefaults(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("PEM TEXT"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "xlb.yaml")
	if err := os.WriteFile(path, []byte("certificates: [{id: ca, type: ca, cert_file: ca.pem}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.DecodeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.GetCertificates()[0]; c.GetCertPem() != "PEM TEXT" || c.GetCertFile() != "ca.pem" {
		t.Errorf("certificate %v, want the file's text inline and the path kept", c)
	}
	if cfg.GetNode() != nil {
		t.Errorf("DecodeFile applied defaults: node = %v", cfg.GetNode())
	}
	if err := os.WriteFile(path, []byte("certificates: [{id: ca, type: ca, cert_file: missing.pem}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.DecodeFile(path); err == nil || !strings.Contains(err.Error(), "certificates[0].cert_file") || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("missing file: %v, want its field and line", err)
	}
}

func TestEncodeYAMLReadsBack(t *testing.T) {
	cfg, err := config.LoadFile("../../configs/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := config.EncodeYAML(cfg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := config.Load(out, t.TempDir())
	if err != nil {
		t.Fatalf("the encoded configuration does not load: %v\n%s", err, out)
	}
	// The inline PEM replaces the file paths; everything else is equal.
	for _, c := range cfg.GetCertificates() {
		c.CertFile, c.KeyFile, c.CrlFile = "", "", ""
	}
	if !proto.Equal(cfg, again) {
		t.Errorf("round trip changed the configuration:\n%s", out)
	}
	if !strings.Contains(string(out), "max_connections: 100000\n") {
		t.Errorf("64-bit integers are not written as numbers:\n%s", out)
	}
}
