package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/certs"
)

// Listen opens the control endpoint: unix://PATH (the socket made 0600,
// its directory 0700 when it has to be created, a stale socket replaced)
// or tcp://HOST:PORT, which requires t (mutual TLS). The returned options
// carry the TLS credentials for grpc.NewServer.
func Listen(listen string, t *xlbv1.ControlTls) (net.Listener, []grpc.ServerOption, error) {
	if path, ok := strings.CutPrefix(listen, "unix://"); ok {
		ln, err := listenUnix(path)
		return ln, nil, err
	}
	hostport, ok := strings.CutPrefix(listen, "tcp://")
	if !ok {
		return nil, nil, fmt.Errorf("control listen %q: not unix://PATH or tcp://HOST:PORT", listen)
	}
	if t == nil || t.GetCertFile() == "" || t.GetKeyFile() == "" || t.GetClientCaFile() == "" {
		return nil, nil, fmt.Errorf("node.control.tls: a tcp:// control listener requires mutual TLS (cert_file, key_file, client_ca_file)")
	}
	tc, err := serverTLS(t)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", hostport)
	if err != nil {
		return nil, nil, fmt.Errorf("control listen %s: %w", listen, err)
	}
	return ln, []grpc.ServerOption{grpc.Creds(credentials.NewTLS(tc))}, nil
}

// serverTLS requires a client certificate signed by the client CA.
func serverTLS(t *xlbv1.ControlTls) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.GetCertFile(), t.GetKeyFile())
	if err != nil {
		return nil, fmt.Errorf("node.control.tls.cert_file/key_file: %w", err)
	}
	caPEM, err := os.ReadFile(t.GetClientCaFile())
	if err != nil {
		return nil, fmt.Errorf("node.control.tls.client_ca_file: %w", err)
	}
	ca, err := certs.ParseCA(caPEM)
	if err != nil {
		return nil, fmt.Errorf("node.control.tls.client_ca_file: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    ca.Pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// listenUnix binds the socket in a private directory beside its final
// place, sets its mode, and renames it into place: nobody can connect
// before the mode is 0600.
func listenUnix(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(dir, ".xlb-sock-")
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	bind := filepath.Join(tmp, "s")
	ln, err := net.Listen("unix", bind)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	// Closing must not unlink the temporary name: the socket lives at path.
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(bind, 0o600); err == nil {
		err = os.Rename(bind, path)
		if err == nil {
			return &unixListener{UnixListener: ul, path: path}, nil
		}
	}
	_ = ln.Close()
	return nil, fmt.Errorf("control socket %s: %w", path, err)
}

// removeStale removes a socket nobody answers on; a live one means
// another xlbd, and anything that is not a socket is left alone.
func removeStale(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if st.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("control socket %s: exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: another process serves it (another xlbd?)", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the stale control socket %s: %w", path, err)
	}
	return nil
}

// unixListener removes the socket file on Close.
type unixListener struct {
	*net.UnixListener
	path string
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	_ = os.Remove(l.path)
	return err
}

// NewGRPCServer returns a gRPC server with the control service, the
// standard health service (serving) and reflection, so grpcurl works.
func NewGRPCServer(s *Server, opts ...grpc.ServerOption) *grpc.Server {
	g := grpc.NewServer(opts...)
	xlbv1.RegisterControlServiceServer(g, s)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(xlbv1.ControlService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	reflection.Register(g)
	return g
}
