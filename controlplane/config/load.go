package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/certs"
)

// maxPEMFile bounds a certificate file read: a wrong path (a log, a device)
// must fail fast instead of filling memory.
const maxPEMFile = 1 << 20

// LoadFile loads the configuration file at path; relative certificate paths
// are relative to its directory.
func LoadFile(path string) (*xlbv1.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return Load(data, filepath.Dir(path))
}

// Load decodes a YAML configuration, reads its certificate files (relative
// to baseDir) into the *_pem fields, applies the defaults and validates the
// result. It returns the configuration with its defaults, or Errors listing
// every problem, each with its field path and, where known, its line.
func Load(data []byte, baseDir string) (*xlbv1.Config, error) {
	cfg, lines, err := decode(data)
	if err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(baseDir); err == nil {
		baseDir = abs
	}
	var fileErrs errorList
	readCertificates(cfg, baseDir, &fileErrs)
	resolveControlTLS(cfg.GetNode().GetControl().GetTls(), baseDir, &fileErrs)

	out := WithDefaults(cfg)
	errs := fileErrs.errs
	if err := Validate(out); err != nil {
		var verrs Errors
		if !errors.As(err, &verrs) {
			return nil, err
		}
		errs = append(errs, verrs...)
	}
	if len(errs) == 0 {
		return out, nil
	}
	for _, e := range errs {
		if e.Line == 0 {
			e.Line = lines.lineOf(e.Path)
		}
	}
	return nil, errs
}

// readCertificates fills each certificate's *_pem fields from its *_file
// fields (which are kept, as the user wrote them).
func readCertificates(cfg *xlbv1.Config, baseDir string, errs *errorList) {
	for i, c := range cfg.Certificates {
		p := index("certificates", i)
		for _, part := range []struct {
			name      string
			file, pem *string
		}{
			{"cert", &c.CertFile, &c.CertPem},
			{"key", &c.KeyFile, &c.KeyPem},
			{"crl", &c.CrlFile, &c.CrlPem},
		} {
			if *part.file == "" {
				continue
			}
			fp := field(p, part.name+"_file")
			if *part.pem != "" {
				errs.add(fp, "set %s_file or %s_pem, not both", part.name, part.name)
				continue
			}
			data, err := readPEMFile(resolve(baseDir, *part.file))
			if err != nil {
				errs.add(fp, "%v", err)
				continue
			}
			*part.pem = string(data)
		}
	}
}

// resolveControlTLS makes the control TLS paths absolute (the daemon reads
// them later, from whatever directory it runs in) and checks the files.
func resolveControlTLS(t *xlbv1.ControlTls, baseDir string, errs *errorList) {
	if t == nil {
		return
	}
	const p = "node.control.tls"
	read := func(name string, path *string) []byte {
		if *path == "" {
			return nil // Validate reports the missing file
		}
		*path = resolve(baseDir, *path)
		data, err := readPEMFile(*path)
		if err != nil {
			errs.add(field(p, name), "%v", err)
		}
		return data
	}
	cert, key, ca := read("cert_file", &t.CertFile), read("key_file", &t.KeyFile), read("client_ca_file", &t.ClientCaFile)
	if cert != nil && key != nil {
		certErr, keyErr := checkServerPEM(cert, key)
		if certErr != nil {
			errs.add(field(p, "cert_file"), "%v", certErr)
		}
		if keyErr != nil {
			errs.add(field(p, "key_file"), "%v", keyErr)
		}
	}
	if ca != nil {
		if _, err := certs.ParseCA(ca); err != nil {
			errs.add(field(p, "client_ca_file"), "%v", err)
		}
	}
}

func resolve(baseDir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(baseDir, path)
}

func readPEMFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read: %w", err)
	}
	if len(data) > maxPEMFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a PEM file", path, maxPEMFile)
	}
	return data, nil
}

// DecodeFile decodes the configuration file at path and reads its
// certificate files (relative to its directory) into the *_pem fields, with
// no defaults and no validation: what a client sends the control API,
// which validates it. The node.control.tls paths are left as written: they
// name files on the daemon's host.
func DecodeFile(path string) (*xlbv1.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	cfg, lines, err := decode(data)
	if err != nil {
		return nil, err
	}
	baseDir := filepath.Dir(path)
	if abs, err := filepath.Abs(baseDir); err == nil {
		baseDir = abs
	}
	var errs errorList
	readCertificates(cfg, baseDir, &errs)
	for _, e := range errs.errs {
		e.Line = lines.lineOf(e.Path)
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}
