package config_test

import (
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/config"
	"github.com/xlbproject/xlb/dataplane/certs/certstest"
)

// certDir writes the certificates the test configurations refer to into a
// fresh directory and returns it.
func certDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ca := certstest.NewCA(t, "test CA")
	server := certstest.NewServer(t, ca, "www.example.com", "*.example.com")
	files := map[string][]byte{
		"ca.pem":         ca.CertPEM,
		"crl.pem":        certstest.CRL(t, ca),
		"server.pem":     certstest.Chain(server, ca),
		"server-key.pem": server.KeyPEM,
		"other-key.pem":  certstest.KeyPEM(t, certstest.NewKey(t)),
		"encrypted-key.pem": pem.EncodeToMemory(&pem.Block{
			Type:    "EC PRIVATE KEY",
			Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00112233445566778899AABBCCDDEEFF"},
			Bytes:   []byte("not really ciphertext"),
		}),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// certsYAML declares the certificates certDir writes.
const certsYAML = `
certificates:
  - {id: www, type: server, cert_file: server.pem, key_file: server-key.pem}
  - {id: clients, type: ca, cert_file: ca.pem, crl_file: crl.pem}
`

// fieldErrors returns the FieldErrors of err, failing when err is nil or of
// another type.
func fieldErrors(t *testing.T, err error) config.Errors {
	t.Helper()
	if err == nil {
		t.Fatal("the configuration was accepted")
	}
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %T %q is not config.Errors", err, err)
	}
	return errs
}

// findError returns the error on path whose text contains want.
func findError(errs config.Errors, path, want string) *config.FieldError {
	for _, e := range errs {
		if e.Path == path && strings.Contains(e.Error(), want) {
			return e
		}
	}
	return nil
}

// mustDecode decodes YAML that must decode and applies the defaults.
func mustDecode(t *testing.T, yaml string) *xlbv1.Config {
	t.Helper()
	cfg, err := config.Decode([]byte(yaml))
	if err != nil {
		t.Fatalf("decode:\n%v", err)
	}
	return config.WithDefaults(cfg)
}
