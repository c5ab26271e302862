package l7

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/xlbproject/xlb/dataplane/certs"
	"github.com/xlbproject/xlb/dataplane/certs/certstest"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// tlsFixture is a CA and the server certificates it signed.
type tlsFixture struct {
	ca   *certstest.Pair
	pool *x509.CertPool
}

func newTLSFixture(t *testing.T) *tlsFixture {
	ca := certstest.NewCA(t, "test CA")
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return &tlsFixture{ca: ca, pool: p}
}

func (f *tlsFixture) server(t *testing.T, id string, names ...string) (*certs.Server, *certstest.Pair) {
	t.Helper()
	p := certstest.NewServer(t, f.ca, names...)
	s, err := certs.ParseServer(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s.ID = id
	return s, p
}

func (f *tlsFixture) clientTLS(name string) *tls.Config {
	return &tls.Config{RootCAs: f.pool, ServerName: name}
}

// httpsClient speaks only HTTP/1.1 or only HTTP/2 (proto "h1" or "h2").
func httpsClient(cfg *tls.Config, proto string, keepAlive bool) *http.Client {
	var p http.Protocols
	if proto == "h2" {
		p.SetHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	// A clone: the HTTP/2 transport adds "h2" to the config's NextProtos.
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: cfg.Clone(), Protocols: &p, DisableCompression: true, DisableKeepAlives: !keepAlive,
	}}
}

func h3Client(cfg *tls.Config) (*http.Client, func()) {
	tr := &http3.Transport{TLSClientConfig: cfg}
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}, func() { _ = tr.Close() }
}

// answer is what a client sees of one response.
type answer struct {
	code    int
	body    string
	backend string
	cookie  string // the persistence cookie set, if any
	altSvc  string
	proto   string
}

func fetch(t *testing.T, c *http.Client, url string, hdr ...string) answer {
	t.Helper()
	code, body, resp := get(t, c, url, hdr...)
	a := answer{code: code, body: body, backend: resp.Header.Get("X-Backend"),
		altSvc: resp.Header.Get("Alt-Svc"), proto: resp.Proto}
	for _, ck := range resp.Cookies() {
		if ck.Name == DefaultCookie {
			a.cookie = ck.Value
		}
	}
	return a
}

func httpsListener(t *testing.T, f *tlsFixture, servers ...pool.Server) (Listener, *certstest.Pair) {
	t.Helper()
	l := testListener(t, servers...)
	l.Name = "lb/https/test"
	s, p := f.server(t, "web", "www.example.com")
	l.TLS = &certs.Settings{Certificates: []*certs.Server{s}}
	return l, p
}

// TestHTTPSSameAnswersAsHTTP: HTTP/1.1 and HTTP/2 over TLS (and HTTP/3)
// get the same answers, persistence cookies and forwarded headers.
func TestHTTPSSameAnswersOnEveryProtocol(t *testing.T) {
	b1, b2 := startBackend(t, "be1"), startBackend(t, "be2")
	f := newTLSFixture(t)
	e := newEngine(t, Options{})
	l, _ := httpsListener(t, f, server(b1, 100), server(b2, 100))
	l.Persistence = Persistence{Mode: InsertCookie}
	l.Headers = Headers{XForwardedFor: true, XForwardedProto: true, LBID: true}
	l.HTTP3 = true
	e.apply(Config{Listeners: []Listener{l}})
	base := "https://" + l.Addr.String()
	cfg := f.clientTLS("www.example.com")
	h3c, closeH3 := h3Client(cfg)
	defer closeH3()
	clients := map[string]*http.Client{
		"HTTP/1.1": httpsClient(cfg, "h1", true),
		"HTTP/2.0": httpsClient(cfg, "h2", true),
		"HTTP/3.0": h3c,
	}
	wantAlt := fmt.Sprintf(`h3=":%d"; ma=86400`, l.Addr.Port())
	for proto, c := range clients {
		first := fetch(t, c, base+"/")
		if first.code != 200 || first.proto != proto || first.cookie == "" {
			t.Fatalf("%s: first answer %+v", proto, first)
		}
		if first.body != first.backend+"\n" && !strings.Contains(first.body, first.backend) {
			t.Errorf("%s: body %q from backend %q", proto, first.body, first.backend)
		}
		if proto != "HTTP/3.0" && first.altSvc != wantAlt {
			t.Errorf("%s: Alt-Svc %q, want %q", proto, first.altSvc, wantAlt)
		}
		// The cookie keeps the client on its backend.
		for range 4 {
			a := fetch(t, c, base+"/", "Cookie", DefaultCookie+"="+first.cookie)
			if a.backend != first.backend || a.cookie != "" {
				t.Errorf("%s: with the cookie of %s: answered by %s, cookie %q", proto, first.backend, a.backend, a.cookie)
			}
		}
		// The backend sees https and the client.
		a := fetch(t, c, base+"/headers")
		var hdr map[string][]string
		if err := json.Unmarshal([]byte(a.body), &hdr); err != nil {
			t.Fatalf("%s: /headers: %v", proto, err)
		}
		if got := hdr["X-Forwarded-Proto"]; len(got) != 1 || got[0] != "https" {
			t.Errorf("%s: X-Forwarded-Proto %q", proto, got)
		}
		if got := hdr["X-Forwarded-For"]; len(got) != 1 || got[0] != "127.0.0.1" {
			t.Errorf("%s: X-Forwarded-For %q", proto, got)
		}
		if got := hdr["X-Lb-Id"]; len(got) != 1 || got[0] != "lb" {
			t.Errorf("%s: X-LB-ID %q", proto, got)
		}
		// A body goes through.
		req, _ := http.NewRequest(http.MethodPost, base+"/echo", strings.NewReader("ping over "+proto))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: POST: %v", proto, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "ping over "+proto {
			t.Errorf("%s: echo %q", proto, body)
		}
	}
	if n := e.counter("xlb_http_requests_total", "listener", l.Name, "code_class", "2xx"); n != 3*7 {
		t.Errorf("2xx requests counted: %v, want 21", n)
	}
	if n := e.counter("xlb_tls_handshakes_total", "listener", l.Name, "result", "full"); n < 3 {
		t.Errorf("full handshakes counted: %v, want at least 3", n)
	}
}

func TestHTTPSSNI(t *testing.T) {
	b := startBackend(t, "be1")
	f := newTLSFixture(t)
	e := newEngine(t, Options{})
	l := testListener(t, server(b, 100))
	def, defP := f.server(t, "default", "default.example.com")
	api, apiP := f.server(t, "api", "api.example.com")
	wild, wildP := f.server(t, "wild", "*.apps.example.com")
	l.TLS = &certs.Settings{Certificates: []*certs.Server{def, api, wild}}
	e.apply(Config{Listeners: []Listener{l}})
	for name, want := range map[string]*certstest.Pair{
		"api.example.com": apiP, "x.apps.example.com": wildP, "default.example.com": defP, "": defP,
	} {
		cfg := f.clientTLS(name)
		cfg.InsecureSkipVerify = name == "" // the default serves other names too
		c, err := tls.Dial("tcp", l.Addr.String(), cfg)
		if err != nil {
			t.Errorf("SNI %q: %v", name, err)
			continue
		}
		if got := c.ConnectionState().PeerCertificates[0]; !got.Equal(want.Cert) {
			t.Errorf("SNI %q: got the certificate for %v", name, got.DNSNames)
		}
		c.Close()
	}
}

func TestHTTPSMutualTLS(t *testing.T) {
	b := startBackend(t, "be1")
	f := newTLSFixture(t)
	clientCA := certstest.NewCA(t, "client CA")
	cca, err := certs.ParseCA(clientCA.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, Options{})
	l, _ := httpsListener(t, f, server(b, 100))
	l.TLS.ClientCA, l.TLS.Mutual = cca, true
	e.apply(Config{Listeners: []Listener{l}})
	url := "https://" + l.Addr.String() + "/"
	withCert := func(p *certstest.Pair) *tls.Config {
		cfg := f.clientTLS("www.example.com")
		if p != nil {
			cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{p.Cert.Raw}, PrivateKey: p.Key}}
		}
		return cfg
	}
	for _, proto := range []string{"h1", "h2"} {
		c := httpsClient(withCert(certstest.NewClient(t, clientCA, "alice")), proto, false)
		if a := fetch(t, c, url); a.code != 200 {
			t.Errorf("%s with a client certificate from the CA: %d", proto, a.code)
		}
		for name, p := range map[string]*certstest.Pair{"no certificate": nil, "another CA's": certstest.NewClient(t, certstest.NewCA(t, "evil"), "mallory")} {
			resp, err := httpsClient(withCert(p), proto, false).Get(url)
			if err == nil {
				resp.Body.Close()
				t.Errorf("%s with %s: answered %d", proto, name, resp.StatusCode)
			}
		}
	}
	if b.Requests() != 2 {
		t.Errorf("backend saw %d requests, want 2", b.Requests())
	}
	waitFor(t, 5*time.Second, "4 failed handshakes counted", func() bool {
		return e.counter("xlb_tls_handshakes_total", "listener", l.Name, "result", "failed") == 4
	})
}

func TestHTTPSResumptionAndVersions(t *testing.T) {
	b := startBackend(t, "be1")
	f := newTLSFixture(t)
	e := newEngine(t, Options{})
	l, _ := httpsListener(t, f, server(b, 100))
	e.apply(Config{Listeners: []Listener{l}})
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := f.clientTLS("www.example.com")
		cfg.MaxVersion = v
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
		for i := range 3 {
			c, err := tls.Dial("tcp", l.Addr.String(), cfg)
			if err != nil {
				t.Fatalf("version %#x: %v", v, err)
			}
			// A request: TLS 1.3 tickets arrive after the handshake.
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("version %#x: request: %v", v, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			if got := c.ConnectionState().DidResume; got != (i > 0) {
				t.Errorf("version %#x connection %d: resumed %v", v, i, got)
			}
			c.Close()
		}
	}
	if n := e.counter("xlb_tls_handshakes_total", "listener", l.Name, "result", "resumed"); n != 4 {
		t.Errorf("resumed handshakes counted: %v, want 4", n)
	}
	cfg := f.clientTLS("www.example.com")
	cfg.MaxVersion = tls.VersionTLS11
	if c, err := tls.Dial("tcp", l.Addr.String(), cfg); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
}

// TestHTTPSCertificateReplacedUnderLoad: a reload with a new certificate
// fails no request, keeps open connections, and new handshakes get it.
func TestHTTPSCertificateReplacedUnderLoad(t *testing.T) {
	b := startBackend(t, "be1")
	f := newTLSFixture(t)
	e := newEngine(t, Options{})
	l, oldP := httpsListener(t, f, server(b, 100))
	e.apply(Config{Listeners: []Listener{l}})
	url := "https://" + l.Addr.String() + "/"
	cfg := f.clientTLS("www.example.com")

	// A keep-alive connection opened before the reload.
	kept, err := tls.Dial("tcp", l.Addr.String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	keptRd := bufio.NewReader(kept)
	keptGet := func() error {
		fmt.Fprintf(kept, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(keptRd, nil)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := keptGet(); err != nil {
		t.Fatal(err)
	}

	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half the workers make a handshake per request, half keep theirs.
			c := httpsClient(cfg, []string{"h1", "h2"}[i%2], i < 2)
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					t.Logf("worker %d: request failed: %v", i, err)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	s, newP := f.server(t, "web", "www.example.com")
	l2 := l
	l2.TLS = &certs.Settings{Certificates: []*certs.Server{s}}
	e.apply(Config{Listeners: []Listener{l2}})
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 20 {
		t.Errorf("under reload: %d requests ok, %d failed", ok.Load(), failed.Load())
	}
	c, err := tls.Dial("tcp", l.Addr.String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ConnectionState().PeerCertificates[0]; !got.Equal(newP.Cert) || got.Equal(oldP.Cert) {
		t.Error("a handshake after the reload did not get the new certificate")
	}
	c.Close()
	if err := keptGet(); err != nil {
		t.Errorf("the connection opened before the reload: %v", err)
	}
	if got := kept.ConnectionState().PeerCertificates[0]; !got.Equal(oldP.Cert) {
		t.Error("the connection opened before the reload changed certificate")
	}
}

func TestHTTPRedirectHTTPSDefaults(t *testing.T) {
	b := startBackend(t, "be1")
	e := newEngine(t, Options{})
	l := testListener(t, server(b, 100))
	l.RedirectHTTPS = &Redirect{Port: 443, Status: 301}
	e.apply(Config{Listeners: []Listener{l}})
	c := client(true)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	code, _, resp := get(t, c, "http://"+l.Addr.String()+"/p?q", "Host", "shop.example.com:80")
	if code != 301 || resp.Header.Get("Location") != "https://shop.example.com/p?q" {
		t.Errorf("redirect %d to %q", code, resp.Header.Get("Location"))
	}
	bad := l
	bad.TLS = &certs.Settings{}
	if _, err := e.Prepare(t.Context(), Config{Listeners: []Listener{bad}}); err == nil {
		t.Error("redirect_https on a TLS listener was accepted")
	}
}

// dialTLS is used by the tool tests to wait for a listener.
func dialTLS(addr string, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	return c.Close()
}

// TestHTTPSReloadTogglesTLSAndHTTP3: one address goes from http to https,
// gains HTTP/3 and loses it again, by reloads.
func TestHTTPSReloadTogglesTLSAndHTTP3(t *testing.T) {
	b := startBackend(t, "be1")
	f := newTLSFixture(t)
	e := newEngine(t, Options{})
	plain := testListener(t, server(b, 100))
	e.apply(Config{Listeners: []Listener{plain}})
	if a := fetch(t, client(false), "http://"+plain.Addr.String()+"/"); a.code != 200 {
		t.Fatalf("plain http: %d", a.code)
	}
	secure := plain
	s, _ := f.server(t, "web", "www.example.com")
	secure.TLS = &certs.Settings{Certificates: []*certs.Server{s}}
	secure.HTTP3 = true
	e.apply(Config{Listeners: []Listener{secure}})
	url := "https://" + plain.Addr.String() + "/"
	cfg := f.clientTLS("www.example.com")
	if a := fetch(t, httpsClient(cfg, "h1", false), url); a.code != 200 || a.altSvc == "" {
		t.Fatalf("after the reload to https: %+v", a)
	}
	h3c, closeH3 := h3Client(cfg)
	if a := fetch(t, h3c, url); a.code != 200 || a.proto != "HTTP/3.0" {
		t.Fatalf("HTTP/3 after the reload: %+v", a)
	}
	closeH3()
	noH3 := secure
	noH3.HTTP3 = false
	e.apply(Config{Listeners: []Listener{noH3}})
	if a := fetch(t, httpsClient(cfg, "h2", false), url); a.code != 200 || a.altSvc != "" {
		t.Errorf("https without http3: %+v", a)
	}
	h3c, closeH3 = h3Client(cfg)
	defer closeH3()
	h3c.Timeout = time.Second
	if resp, err := h3c.Get(url); err == nil {
		resp.Body.Close()
		t.Error("HTTP/3 still answers after http3 was turned off")
	}
}
