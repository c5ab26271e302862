package demo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/xlbproject/xlb/configs"
	"github.com/xlbproject/xlb/controlplane/config"
	"github.com/xlbproject/xlb/dataplane/certs"
	"github.com/xlbproject/xlb/internal/netlab"
)

// demoServerName is a name the demo's example certificate covers.
const demoServerName = "www.example.com"

// httpsDemo sends requests to the https listener over HTTP/1.1, HTTP/2
// and HTTP/3, verifying the certificate against the example CA (the last
// certificate of the demo's chain).
func httpsDemo(ctx context.Context, out io.Writer, step func(string, ...any), lab *netlab.Lab, rep *Report) error {
	roots, err := demoRoots()
	if err != nil {
		return err
	}
	tlsCfg := &tls.Config{RootCAs: roots, ServerName: demoServerName}
	url := "https://" + netlab.VIP + ":443/"
	step("HTTPS listener %s (TLS terminated by xlbd, SNI %s): %d requests over HTTP/1.1 and over HTTP/2, each a new client",
		url, demoServerName, rounds/2)
	rep.HTTPS = map[string]map[string]int{}
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		var p http.Protocols
		p.SetHTTP1(proto == "HTTP/1.1")
		p.SetHTTP2(proto == "HTTP/2.0")
		counts := map[string]int{}
		for range rounds / 2 {
			c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
				DialContext: lab.Dialer(netlab.HostClient), TLSClientConfig: tlsCfg.Clone(), Protocols: &p, DisableKeepAlives: true}}
			resp, err := get(ctx, c, url)
			if err != nil {
				return err
			}
			if resp.Proto != proto {
				return fmt.Errorf("GET %s: answered over %s, want %s", url, resp.Proto, proto)
			}
			counts[resp.Header.Get("X-Backend")]++
			rep.AltSvc = resp.Header.Get("Alt-Svc")
		}
		rep.HTTPS[proto] = counts
		fmt.Fprintf(out, "   %s:\n", proto)
		printShare(out, counts)
	}
	fmt.Fprintf(out, "   answers advertise Alt-Svc: %s\n", rep.AltSvc)

	step("HTTP/3 (QUIC on UDP 443 of the same listener): one client, %d requests", rounds/2)
	pc, err := lab.ListenPacket(netlab.HostClient, "udp", ":0")
	if err != nil {
		return err
	}
	qt := &quic.Transport{Conn: pc}
	defer func() {
		_ = qt.Close()
		_ = pc.Close()
	}()
	h3 := &http3.Transport{TLSClientConfig: tlsCfg.Clone(),
		Dial: func(ctx context.Context, addr string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
			ua, err := net.ResolveUDPAddr("udp", addr)
			if err != nil {
				return nil, err
			}
			return qt.DialEarly(ctx, ua, tc, qc)
		}}
	defer h3.Close()
	c := &http.Client{Timeout: 3 * time.Second, Transport: h3}
	rep.HTTP3 = map[string]int{}
	for range rounds / 2 {
		resp, err := get(ctx, c, url)
		if err != nil {
			return err
		}
		if resp.ProtoMajor != 3 {
			return fmt.Errorf("GET %s over HTTP/3: answered over %s", url, resp.Proto)
		}
		rep.HTTP3[resp.Header.Get("X-Backend")]++
	}
	printShare(out, rep.HTTP3)
	return nil
}

func get(ctx context.Context, c *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp, nil
}

// demoRoots trusts the CA that ends the demo certificate's chain.
func demoRoots() (*x509.CertPool, error) {
	cfg, err := config.Load(configs.DemoYAML(), ".")
	if err != nil {
		return nil, fmt.Errorf("demo configuration: %w", err)
	}
	for _, c := range cfg.GetCertificates() {
		chain, err := certs.ParseChain([]byte(c.GetCertPem()))
		if err != nil || len(chain) < 2 {
			continue
		}
		roots := x509.NewCertPool()
		roots.AddCert(chain[len(chain)-1])
		return roots, nil
	}
	return nil, errors.New("demo configuration: no certificate chain with its CA")
}
