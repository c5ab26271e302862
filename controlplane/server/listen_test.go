package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/controlplane/client"
	"github.com/xlbproject/xlb/controlplane/store"
	"github.com/xlbproject/xlb/dataplane/certs/certstest"
)

// idle is a server with an applied empty configuration and no engines.
func idle(t *testing.T) *Server {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := New(Options{Store: st, Applier: applierFunc(func(context.Context, *xlbv1.Config) (uint64, error) { return 1, nil })})
	if _, _, err := s.Change(bg, &xlbv1.Config{}, store.Record{Source: "test"}, 0); err != nil {
		t.Fatal(err)
	}
	return s
}

func serveOn(t *testing.T, s *Server, ln net.Listener, opts ...grpc.ServerOption) {
	t.Helper()
	g := NewGRPCServer(s, opts...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.Serve(ln)
	}()
	t.Cleanup(func() { g.Stop(); <-done })
}

func TestUnixSocketIsPrivateAndReplacesAStaleOne(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "xlb")
	sock := filepath.Join(dir, "xlb.sock")
	// A stale socket: bound, then its owner gone without removing it.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	ln, _, err := Listen("unix://"+sock, nil)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	st, err := os.Stat(sock)
	if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v (%v), want a socket with mode 0600", st.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the socket directory holds %d entries, want only the socket", len(entries))
	}
	serveOn(t, idle(t), ln)

	// A live socket is not taken over.
	if _, _, err := Listen("unix://"+sock, nil); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("Listen over a live socket = %v, want a refusal", err)
	}
	c, err := client.Dial(client.Options{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	if r, err := c.Get(ctx, &xlbv1.GetRequest{}); err != nil || r.GetInfo().GetVersion() != 1 {
		t.Errorf("Get over the socket: %v, %v", r, err)
	}
	// The standard health service and reflection are there (grpcurl's needs).
	h, err := healthpb.NewHealthClient(c.Conn()).Check(ctx, &healthpb.HealthCheckRequest{Service: "xlb.v1.ControlService"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health check: %v, %v", h, err)
	}
	if svcs := listServices(t, ctx, c.Conn()); !contains(svcs, "xlb.v1.ControlService") || !contains(svcs, "grpc.health.v1.Health") {
		t.Errorf("reflection lists %v", svcs)
	}

	// Not a socket: left alone.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Listen("unix://"+file, nil); err == nil {
		t.Error("Listen over a regular file succeeded")
	}
}

func listServices(t *testing.T, ctx context.Context, conn *grpc.ClientConn) []string {
	t.Helper()
	stream, err := rpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	if err := stream.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	var out []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		out = append(out, s.GetName())
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestTCPListenerRequiresAClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, "control ca")
	srvCert := certstest.NewServer(t, ca, "xlbd.test")
	good := certstest.NewClient(t, ca, "operator")
	rogueCA := certstest.NewCA(t, "rogue ca")
	rogue := certstest.NewClient(t, rogueCA, "intruder")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tlsCfg := &xlbv1.ControlTls{
		CertFile: write("srv.pem", srvCert.CertPEM), KeyFile: write("srv.key", srvCert.KeyPEM), ClientCaFile: write("ca.pem", ca.CertPEM),
	}
	if _, _, err := Listen("tcp://127.0.0.1:0", nil); err == nil || !strings.Contains(err.Error(), "node.control.tls") {
		t.Errorf("tcp without tls = %v, want an error naming node.control.tls", err)
	}
	ln, opts, err := Listen("tcp://127.0.0.1:0", tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, idle(t), ln, opts...)
	addr := ln.Addr().String()

	try := func(o client.Options) error {
		o.Addr, o.ServerName = addr, "xlbd.test"
		c, err := client.Dial(o)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(bg, 3*time.Second)
		defer cancel()
		_, err = c.Get(ctx, &xlbv1.GetRequest{}, grpc.WaitForReady(false))
		return err
	}
	caFile := write("server-ca.pem", ca.CertPEM)
	if err := try(client.Options{CertFile: write("good.pem", good.CertPEM), KeyFile: write("good.key", good.KeyPEM), CAFile: caFile}); err != nil {
		t.Errorf("a client with a valid certificate: %v", err)
	}
	if err := try(client.Options{CertFile: write("rogue.pem", rogue.CertPEM), KeyFile: write("rogue.key", rogue.KeyPEM), CAFile: caFile}); err == nil {
		t.Error("a client certificate from another CA was accepted")
	}
	// No certificate at all: a plain TLS handshake is refused by the server.
	if err := tlsWithoutCert(addr, ca); err == nil {
		t.Error("a TLS client without a certificate completed a request")
	}
}

func tlsWithoutCert(addr string, ca *certstest.Pair) error {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "xlbd.test"})))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(bg, 3*time.Second)
	defer cancel()
	_, err = xlbv1.NewControlServiceClient(conn).Get(ctx, &xlbv1.GetRequest{})
	return err
}
