package peers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// HTTPProxy is the configuration shared by the L7 peers.
type HTTPProxy struct {
	// Listen is the frontend address, "VIP:port".
	Listen   string
	Backends []Backend
	// CPU is the core the proxy is pinned to.
	CPU int
	// MaxConn bounds connections; 0 means 8000 (each takes two descriptors
	// and the hard limit here may be as low as 20000).
	MaxConn int
	// RunDir holds the configuration, pid file, temporary files and logs.
	RunDir string
	// TLSCert and TLSKey (PEM files), when set, make the frontend HTTPS
	// with ALPN h2 and http/1.1 (TLS 1.2 and 1.3, the proxy's default
	// ciphers).
	TLSCert, TLSKey string
}

func (p HTTPProxy) check() error {
	var errs []error
	if p.Listen == "" {
		errs = append(errs, errors.New("no listen address"))
	}
	if len(p.Backends) == 0 {
		errs = append(errs, errors.New("no backends"))
	}
	if p.CPU < 0 {
		errs = append(errs, fmt.Errorf("cpu %d", p.CPU))
	}
	if !filepath.IsAbs(p.RunDir) {
		errs = append(errs, fmt.Errorf("run dir %q is not absolute", p.RunDir))
	}
	return errors.Join(errs...)
}

type httpProxyData struct {
	HTTPProxy
	CPUMask string
	NoFile  int    // descriptors: a client and a server side per connection
	TLSPEM  string // HAProxy's certificate and key in one file
}

func (p HTTPProxy) data() (httpProxyData, error) {
	if err := p.check(); err != nil {
		return httpProxyData{}, fmt.Errorf("http proxy config: %w", err)
	}
	if p.MaxConn == 0 {
		p.MaxConn = 8000
	}
	d := httpProxyData{HTTPProxy: p, CPUMask: cpuMask(p.CPU), NoFile: 2*p.MaxConn + 100}
	if p.TLSCert != "" {
		d.TLSPEM = filepath.Join(p.RunDir, "haproxy-tls.pem")
	}
	return d, nil
}

// RenderHAProxy returns haproxy.cfg for p.
func RenderHAProxy(p HTTPProxy) ([]byte, error) {
	d, err := p.data()
	if err != nil {
		return nil, err
	}
	return render("haproxy.cfg.tmpl", d)
}

// RenderNGINX returns nginx.conf for p.
func RenderNGINX(p HTTPProxy) ([]byte, error) {
	d, err := p.data()
	if err != nil {
		return nil, err
	}
	return render("nginx.conf.tmpl", d)
}

// StartHAProxy writes RunDir/haproxy.cfg, checks it and runs HAProxy in the
// foreground in host, pinned to p.CPU; its output goes to
// RunDir/haproxy.log. The caller checks readiness and calls Stop.
func StartHAProxy(ctx context.Context, lab Lab, host string, p HTTPProxy) (*Proc, error) {
	cfg, err := RenderHAProxy(p)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(p.RunDir, "haproxy.cfg")
	if err := writeConfig(path, cfg); err != nil {
		return nil, err
	}
	if p.TLSCert != "" {
		// HAProxy reads the certificate and its key from one file.
		var pem []byte
		for _, f := range []string{p.TLSCert, p.TLSKey} {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			pem = append(pem, b...)
		}
		if err := os.WriteFile(filepath.Join(p.RunDir, "haproxy-tls.pem"), pem, 0o600); err != nil {
			return nil, err
		}
	}
	if out, err := lab.Run(ctx, host, "haproxy", "-c", "-q", "-f", path); err != nil {
		return nil, fmt.Errorf("haproxy rejects %s: %w: %s", path, err, out)
	}
	return Start(ctx, lab, host, "haproxy", filepath.Join(p.RunDir, "haproxy.log"),
		"taskset", "-c", strconv.Itoa(p.CPU), "haproxy", "-db", "-f", path)
}

// StartNGINX writes RunDir/nginx.conf, checks it and runs NGINX (master and
// one worker) in the foreground in host, pinned to p.CPU; its output goes
// to RunDir/nginx.log, its error log to RunDir/nginx-error.log.
func StartNGINX(ctx context.Context, lab Lab, host string, p HTTPProxy) (*Proc, error) {
	cfg, err := RenderNGINX(p)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(p.RunDir, "nginx.conf")
	if err := writeConfig(path, cfg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(p.RunDir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	// -e: the error log before the configuration is read (otherwise the
	// distribution's path).
	args := []string{"-p", p.RunDir + "/", "-c", path, "-e", filepath.Join(p.RunDir, "nginx-error.log")}
	if out, err := lab.Run(ctx, host, "nginx", append(args, "-t", "-q")...); err != nil {
		return nil, fmt.Errorf("nginx rejects %s: %w: %s", path, err, out)
	}
	return Start(ctx, lab, host, "nginx", filepath.Join(p.RunDir, "nginx.log"),
		append([]string{"taskset", "-c", strconv.Itoa(p.CPU), "nginx"}, args...)...)
}

func writeConfig(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
