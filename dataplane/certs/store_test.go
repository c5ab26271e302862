package certs_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/xlbproject/xlb/dataplane/certs"
	"github.com/xlbproject/xlb/dataplane/certs/certstest"
)

func server(t *testing.T, p *certstest.Pair, id string) *certs.Server {
	t.Helper()
	s, err := certs.ParseServer(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s.ID = id
	return s
}

func newStore(t *testing.T, now func() time.Time, set certs.Settings) *certs.Store {
	t.Helper()
	st, err := certs.NewStore(now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := certs.Compile(set)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Set(c); err != nil {
		t.Fatal(err)
	}
	return st
}

// handshake runs one TLS connection over a pipe and reads a byte the server
// sends, so TLS 1.3 session tickets reach the client.
func handshake(t *testing.T, st *certs.Store, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_ = a.SetDeadline(time.Now().Add(5 * time.Second))
	_ = b.SetDeadline(time.Now().Add(5 * time.Second))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := tls.Server(a, st.Config())
		if sc.Handshake() == nil {
			_, _ = sc.Write([]byte("x"))
			// Read until the client closes: the pipe is synchronous, and both
			// sides writing their close_notify at once would block.
			_, _ = io.Copy(io.Discard, sc)
		}
		_ = a.Close()
	}()
	cc := tls.Client(b, cfg)
	err := cc.Handshake()
	if err == nil {
		_, err = io.ReadFull(cc, make([]byte, 1))
	}
	cs := cc.ConnectionState()
	_ = cc.Close()
	_ = b.Close()
	wg.Wait()
	return cs, err
}

func clientConfig(ca *certstest.Pair, name string) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &tls.Config{RootCAs: pool, ServerName: name}
}

func TestStoreSNI(t *testing.T) {
	ca := certstest.NewCA(t, "ca")
	def := certstest.NewServer(t, ca, "default.example")
	a := certstest.NewServer(t, ca, "a.example")
	wild := certstest.NewServer(t, ca, "*.b.example")
	st := newStore(t, nil, certs.Settings{Certificates: []*certs.Server{
		server(t, def, "def"), server(t, a, "a"), server(t, wild, "wild")}})
	for name, want := range map[string]*certstest.Pair{
		"a.example": a, "A.Example": a, "x.b.example": wild, "default.example": def, "other.example": def,
	} {
		cfg := clientConfig(ca, name)
		cfg.InsecureSkipVerify = want == def && name != "default.example"
		cs, err := handshake(t, st, cfg)
		if err != nil {
			t.Errorf("SNI %s: %v", name, err)
			continue
		}
		if got := cs.PeerCertificates[0]; !got.Equal(want.Cert) {
			t.Errorf("SNI %s: served %v, want %v", name, got.Subject, want.Cert.Subject)
		}
	}
}

func TestStoreVersionsAndSuites(t *testing.T) {
	ca := certstest.NewCA(t, "ca")
	st := newStore(t, nil, certs.Settings{Certificates: []*certs.Server{server(t, certstest.NewServer(t, ca, "a.example"), "a")}})
	cfg := clientConfig(ca, "a.example")
	cfg.MaxVersion = tls.VersionTLS11
	if _, err := handshake(t, st, cfg); err == nil {
		t.Error("a TLS 1.1 handshake succeeded")
	}
	cfg = clientConfig(ca, "a.example")
	cfg.MaxVersion = tls.VersionTLS12
	cfg.CipherSuites = []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	if _, err := handshake(t, st, cfg); err == nil {
		t.Error("a TLS 1.2 handshake without an ECDHE AEAD suite succeeded")
	}
	cfg.CipherSuites = nil
	cs, err := handshake(t, st, cfg)
	if err != nil || cs.Version != tls.VersionTLS12 {
		t.Fatalf("TLS 1.2: version %#x, %v", cs.Version, err)
	}
	if n := tls.CipherSuiteName(cs.CipherSuite); !strings.HasPrefix(n, "TLS_ECDHE_") {
		t.Errorf("TLS 1.2 suite %s", n)
	}
	st13 := newStore(t, nil, certs.Settings{MinVersion: tls.VersionTLS13,
		Certificates: []*certs.Server{server(t, certstest.NewServer(t, ca, "a.example"), "a")}})
	if _, err := handshake(t, st13, cfg); err == nil {
		t.Error("min version 1.3 accepted TLS 1.2")
	}
	if _, err := certs.Compile(certs.Settings{MinVersion: tls.VersionTLS11,
		Certificates: []*certs.Server{server(t, certstest.NewServer(t, ca, "a.example"), "a")}}); err == nil {
		t.Error("min version 1.1 compiled")
	}
}

func TestStoreMutual(t *testing.T) {
	ca := certstest.NewCA(t, "server ca")
	clientCA := certstest.NewCA(t, "client ca")
	other := certstest.NewCA(t, "other ca")
	good := certstest.NewClient(t, clientCA, "good")
	revoked := certstest.NewClient(t, clientCA, "revoked")
	wrong := certstest.NewClient(t, other, "wrong")
	cca, err := certs.ParseCA(clientCA.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := certs.ParseCRL(certstest.CRL(t, clientCA, revoked))
	if err != nil {
		t.Fatal(err)
	}
	st := newStore(t, nil, certs.Settings{ClientCA: cca, CRL: crl, Mutual: true,
		Certificates: []*certs.Server{server(t, certstest.NewServer(t, ca, "a.example"), "a")}})
	with := func(p *certstest.Pair) *tls.Config {
		cfg := clientConfig(ca, "a.example")
		if p != nil {
			cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{p.Cert.Raw}, PrivateKey: p.Key}}
		}
		return cfg
	}
	if _, err := handshake(t, st, with(good)); err != nil {
		t.Errorf("client certificate signed by the CA: %v", err)
	}
	for name, p := range map[string]*certstest.Pair{"none": nil, "other CA": wrong, "revoked": revoked} {
		if _, err := handshake(t, st, with(p)); err == nil {
			t.Errorf("client certificate %s: handshake succeeded", name)
		}
	}
}

func TestStoreTicketLifetimeAndRotation(t *testing.T) {
	ca := certstest.NewCA(t, "ca")
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	st := newStore(t, now, certs.Settings{Certificates: []*certs.Server{server(t, certstest.NewServer(t, ca, "a.example"), "a")}})
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := clientConfig(ca, "a.example")
		cfg.MaxVersion = v
		cfg.Time = now
		resume := func() bool {
			t.Helper()
			cs, err := handshake(t, st, cfg)
			if err != nil {
				t.Fatalf("version %#x: %v", v, err)
			}
			return cs.DidResume
		}
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		if resume() {
			t.Fatalf("version %#x: first handshake resumed", v)
		}
		advance(certs.TicketLifetime - 10*time.Second)
		if !resume() {
			t.Errorf("version %#x: no resumption within the ticket lifetime", v)
		}
		// A fresh ticket, then too old.
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		resume()
		advance(certs.TicketLifetime + time.Second)
		if resume() {
			t.Errorf("version %#x: a ticket older than %v resumed", v, certs.TicketLifetime)
		}
		// One rotation keeps the previous key; two drop it.
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		resume()
		if err := st.RotateTickets(); err != nil {
			t.Fatal(err)
		}
		if !resume() {
			t.Errorf("version %#x: one rotation broke a live ticket", v)
		}
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		resume()
		_ = st.RotateTickets()
		_ = st.RotateTickets()
		if resume() {
			t.Errorf("version %#x: a ticket resumed after its key was rotated out", v)
		}
	}
}

func TestStoreSetSwapsCertificate(t *testing.T) {
	ca := certstest.NewCA(t, "ca")
	old, fresh := certstest.NewServer(t, ca, "a.example"), certstest.NewServer(t, ca, "a.example")
	st := newStore(t, nil, certs.Settings{Certificates: []*certs.Server{server(t, old, "a")}})
	cs, err := handshake(t, st, clientConfig(ca, "a.example"))
	if err != nil || !cs.PeerCertificates[0].Equal(old.Cert) {
		t.Fatalf("before: %v", err)
	}
	c, err := certs.Compile(certs.Settings{Certificates: []*certs.Server{server(t, fresh, "a")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Set(c); err != nil {
		t.Fatal(err)
	}
	cs, err = handshake(t, st, clientConfig(ca, "a.example"))
	if err != nil || !cs.PeerCertificates[0].Equal(fresh.Cert) {
		t.Fatalf("after Set: not the new certificate (%v)", err)
	}
}

func TestExpiry(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	x := certs.NewExpiry(func() time.Time { return now })
	reg := prometheus.NewRegistry()
	reg.MustRegister(x)
	x.Set(map[string]time.Time{"soon": now.Add(48 * time.Hour), "later": now.Add(90 * 24 * time.Hour), "gone": now.Add(-time.Hour)})
	if n := testutil.CollectAndCount(x, "xlb_certificate_expiry_seconds"); n != 3 {
		t.Fatalf("%d series, want 3", n)
	}
	want := `
# HELP xlb_certificate_expiry_seconds Seconds until the certificate (the earliest expiry in its chain) expires; negative: expired.
# TYPE xlb_certificate_expiry_seconds gauge
xlb_certificate_expiry_seconds{certificate="gone"} -3600
xlb_certificate_expiry_seconds{certificate="later"} 7.776e+06
xlb_certificate_expiry_seconds{certificate="soon"} 172800
`
	if err := testutil.CollectAndCompare(x, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	x.Warn(zap.New(core))
	x.Warn(zap.New(core)) // the same day: no repeat
	if logs.Len() != 2 {
		t.Fatalf("%d warnings, want 2 (soon, gone): %v", logs.Len(), logs.All())
	}
	for _, e := range logs.All() {
		if id := e.ContextMap()["certificate"]; id == "later" {
			t.Errorf("warned about a certificate 90 days from expiry")
		}
	}
}
