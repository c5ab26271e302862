// Package client connects to xlbd's control service: over its unix socket,
// or over TCP with mutual TLS.
package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

// DefaultSocket is where xlbd listens unless node.control.listen says.
const DefaultSocket = "/run/xlb/xlb.sock"

// Options say where xlbd is and how to prove who we are.
type Options struct {
	// Socket is the unix socket path; used when Addr is empty.
	Socket string
	// Addr is HOST:PORT of a TCP control listener (mutual TLS).
	Addr string
	// CertFile and KeyFile are the client certificate; CAFile the CA that
	// signed xlbd's certificate; ServerName overrides the name checked in
	// it (default: Addr's host).
	CertFile, KeyFile, CAFile, ServerName string
}

// Client is a connection to xlbd.
type Client struct {
	xlbv1.ControlServiceClient
	conn *grpc.ClientConn
}

// Dial prepares a connection; it connects on the first call.
func Dial(o Options) (*Client, error) {
	var target string
	var creds credentials.TransportCredentials
	if o.Addr != "" {
		tc, err := clientTLS(o)
		if err != nil {
			return nil, err
		}
		target, creds = "passthrough:///"+o.Addr, credentials.NewTLS(tc)
	} else {
		sock := o.Socket
		if sock == "" {
			sock = DefaultSocket
		}
		target, creds = "unix://"+sock, insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("connecting to xlbd: %w", err)
	}
	return &Client{ControlServiceClient: xlbv1.NewControlServiceClient(conn), conn: conn}, nil
}

// Conn is the underlying connection (reflection and health clients).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

func clientTLS(o Options) (*tls.Config, error) {
	if o.CertFile == "" || o.KeyFile == "" || o.CAFile == "" {
		return nil, errors.New("a TCP control listener needs mutual TLS: give the client certificate, its key and the CA of xlbd's certificate")
	}
	cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	caPEM, err := os.ReadFile(o.CAFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", o.CAFile)
	}
	name := o.ServerName
	if name == "" {
		if host, _, err := net.SplitHostPort(o.Addr); err == nil {
			name = host
		}
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12}, nil
}

// Describe renders an error from xlbd for a person: the status message,
// then each field violation on its own line.
func Describe(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, "  "+v.GetField()+": "+v.GetDescription())
			}
		}
	}
	msg := st.Message()
	if len(fields) > 0 {
		msg, _, _ = strings.Cut(msg, "\n")
		return fmt.Sprintf("%s (%s)\n%s", msg, st.Code(), strings.Join(fields, "\n"))
	}
	return fmt.Sprintf("%s (%s)", msg, st.Code())
}
