package load

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http/httptest"
	"testing"

	"github.com/xlbproject/xlb/bench/serve"
)

func TestHTTPOverTLS(t *testing.T) {
	s := serve.NewHTTP("b1")
	srv := httptest.NewUnstartedServer(s)
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-certificate case logs
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	for _, proto := range []string{ProtoHTTP1, ProtoH2} {
		before := s.Counters().Requests
		r, err := HTTP(t.Context(), HTTPOptions{URL: srv.URL + "/", Proto: proto, Connections: 4, Requests: 200, TLSConfig: &tls.Config{RootCAs: roots}})
		if err != nil {
			t.Fatal(err)
		}
		want := uint64(4)
		if proto == ProtoH2 {
			want = 1
		}
		if got := s.Counters().Requests - before; r.Ops != 200 || got != 200 || len(r.Errors) != 0 || r.Connections != want {
			t.Errorf("%s: ops %d, server %d, errors %v, connections %d (want %d)", proto, r.Ops, got, r.Errors, r.Connections, want)
		}
	}
	// A certificate the client does not trust is a connect error.
	for _, proto := range []string{ProtoHTTP1, ProtoH2} {
		r, err := HTTP(t.Context(), HTTPOptions{URL: srv.URL + "/", Proto: proto, Connections: 1, Requests: 3})
		if err != nil {
			t.Fatal(err)
		}
		if r.Errors[ErrConnect] != 3 {
			t.Errorf("%s with an untrusted certificate: errors %v, want 3 connect", proto, r.Errors)
		}
	}
}
