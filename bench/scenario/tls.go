package scenario

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xlbproject/xlb/bench/peers"
	"github.com/xlbproject/xlb/bench/report"
	"github.com/xlbproject/xlb/internal/labsvc"
	"github.com/xlbproject/xlb/internal/netlab"
)

// tlsScenario compares the HTTPS listeners of xlb, HAProxy and NGINX: full
// handshakes per second (a new connection per request, no resumption) and
// HTTP/2 requests per second over kept-alive TLS connections.
func tlsScenario() Scenario {
	const backends = 3
	return Scenario{
		Name:  "tls",
		Title: "TLS: full handshakes and HTTP/2 over TLS through xlb, HAProxy and NGINX",
		Description: "HTTPS on the gateway's VIP with one ECDSA P-256 certificate, ALPN h2 and http/1.1, round robin over 3 " +
			"HTTP backends (plain HTTP/1.1 with keep-alive behind each proxy). Handshakes: a new TLS connection per " +
			"request (GET /, the backend's name), no session resumption, X25519 key exchange. HTTP/2: 32 concurrent " +
			"streams on one kept-alive TLS connection, driven by the Go generator and again by nghttp2's h2load.",
		Backends:  backends,
		Workloads: []Workload{tlsHandshakes(), tlsH2(), tlsH2Load()},
		Systems: func() []System {
			return []System{newXlbHTTPS(443, backends), newTLSProxy("haproxy", 444, peers.StartHAProxy), newTLSProxy("nginx", 445, peers.StartNGINX)}
		},
		Method: []string{
			"CPU per request is the CPU time of the proxy's process tree over the measured window, divided by the requests " +
				"served in it, at the fixed open-loop rate; every proxy is pinned to the gateway core, HAProxy and NGINX with one " +
				"thread or worker, TLS 1.2 and 1.3 with their default ciphers (TLS 1.3 AES-128-GCM is what the generator and all " +
				"three agree on). The generator (Go's crypto/tls, `xlb-bench http -insecure -x25519`) offers only X25519: Go would " +
				"otherwise offer the post-quantum X25519MLKEM768 too, which xlb (a Go server) picks and the OpenSSL 3.0 peers cannot, " +
				"and the comparison would be of two key exchanges. The h2load part drives the same HTTP/2 load with nghttp2's h2load " +
				"(OpenSSL, X25519, one thread on the load core): it costs the load core far less per request than the Go " +
				"generator, so its max rates show more of the proxies' own limits; its open loop (`--rps`) paces from each " +
				"request's actual start, so its latencies are not corrected for coordinated omission as the generator's are.",
		},
	}
}

func tlsHandshakes() Workload {
	return Workload{
		Name: "handshakes", Title: "Full TLS handshakes (a new connection per request)", Short: "TLS handshakes",
		Unit: "handshakes/s", Op: "handshake", CPUMethod: report.CPUProcess, Connections: 32,
		Args: func(target string, rate float64, conns int) []string {
			return append([]string{"http", "-proto", "http1", "-new-conn", "-insecure", "-x25519", "-c", strconv.Itoa(conns), target}, rateArgs(rate)...)
		},
		Check: checkHTTPS,
	}
}

func tlsH2() Workload {
	return Workload{
		Name: "h2", Title: "HTTP/2 over TLS, kept-alive connections, small responses", Short: "HTTP/2 over TLS",
		Unit: "req/s", Op: "request", CPUMethod: report.CPUProcess, Connections: 32,
		Args: func(target string, rate float64, conns int) []string {
			return append([]string{"http", "-proto", "h2", "-insecure", "-x25519", "-c", strconv.Itoa(conns), target}, rateArgs(rate)...)
		},
		Check: checkHTTPS,
	}
}

func checkHTTPS(ctx context.Context, lab *netlab.Lab, url string) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: lab.Dialer(netlab.HostClient), DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the lab's own certificate
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// labCert writes (once per run) the scenario's certificate and key into
// the output directory and returns their paths.
func (e *Env) labCert() (certFile, keyFile string, err error) {
	dir := filepath.Join(e.Opts.OutDir, "tls")
	certFile, keyFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	if _, err := os.Stat(keyFile); err == nil {
		return certFile, keyFile, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench.xlb.test"},
		DNSNames: []string{"bench.xlb.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// tlsProxy is HAProxy or NGINX terminating TLS on VIP:port.
type tlsProxy struct{ httpProxy }

func newTLSProxy(name string, port int, start func(context.Context, peers.Lab, string, peers.HTTPProxy) (*peers.Proc, error)) System {
	return &tlsProxy{httpProxy{name: name, port: port, start: start}}
}

func (s *tlsProxy) Target(w string) string {
	if w != "handshakes" && w != "h2" && w != "h2load" {
		return ""
	}
	return "https://" + hostPort(netlab.VIP, s.port) + "/"
}

func (s *tlsProxy) Start(ctx context.Context, e *Env) error {
	cert, key, err := e.labCert()
	if err != nil {
		return err
	}
	p, err := s.start(ctx, e.Lab, netlab.HostGateway, peers.HTTPProxy{
		Listen: hostPort(netlab.VIP, s.port), Backends: e.backendList(labsvc.HTTPPort),
		CPU: e.Opts.GatewayCPU, RunDir: e.systemDir(s.name), TLSCert: cert, TLSKey: key,
	})
	if err != nil {
		return err
	}
	s.proc = p
	return nil
}

// xlbHTTPS is xlbd's https listener, configured like the peers.
type xlbHTTPS struct {
	xlbd
	port, backends int
}

func newXlbHTTPS(port, backends int) System {
	t := "https://" + hostPort(netlab.VIP, port) + "/"
	return &xlbHTTPS{xlbd: xlbd{name: "xlb", metrics: "127.0.0.1:9104", targets: map[string]string{"handshakes": t, "h2": t, "h2load": t}},
		port: port, backends: backends}
}

func (s *xlbHTTPS) Start(ctx context.Context, e *Env) error {
	cert, key, err := e.labCert()
	if err != nil {
		return err
	}
	s.config = xlbConfig("off", s.backends, fmt.Sprintf(`
      - {protocol: https, port: %d, backend_port: %d, scheduler: rr, gzip: false, tls: {certificates: [bench]}}`, s.port, labsvc.HTTPPort)) +
		fmt.Sprintf("certificates:\n  - {id: bench, type: server, cert_file: %s, key_file: %s}\n", cert, key)
	return s.xlbd.Start(ctx, e)
}
