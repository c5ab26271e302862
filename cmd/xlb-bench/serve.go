package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sync/errgroup"

	"github.com/xlbproject/xlb/bench/serve"
)

func runServe(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("xlb-bench serve", flag.ContinueOnError)
	host, _ := os.Hostname()
	name := fs.String("name", host, "backend name returned by / and whoami")
	httpAddr := fs.String("http", "", "HTTP listen address (HTTP/1.1 and h2c)")
	tcpAddr := fs.String("tcp", "", "TCP echo listen address")
	udpAddr := fs.String("udp", "", "UDP echo listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *httpAddr == "" && *tcpAddr == "" && *udpAddr == "" {
		return errors.New("serve: give at least one of --http, --tcp, --udp")
	}
	g, ctx := errgroup.WithContext(ctx)
	if *httpAddr != "" {
		l, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return fmt.Errorf("--http: %w", err)
		}
		fmt.Fprintf(stdout, "%s: http on %s\n", *name, l.Addr())
		g.Go(func() error { return serve.NewHTTP(*name).Serve(ctx, l) })
	}
	if *tcpAddr != "" {
		l, err := net.Listen("tcp", *tcpAddr)
		if err != nil {
			return fmt.Errorf("--tcp: %w", err)
		}
		fmt.Fprintf(stdout, "%s: tcp echo on %s\n", *name, l.Addr())
		g.Go(func() error { return serve.NewTCPEcho(*name).Serve(ctx, l) })
	}
	if *udpAddr != "" {
		pc, err := net.ListenPacket("udp", *udpAddr)
		if err != nil {
			return fmt.Errorf("--udp: %w", err)
		}
		fmt.Fprintf(stdout, "%s: udp echo on %s\n", *name, pc.LocalAddr())
		g.Go(func() error { return serve.NewUDPEcho(*name).Serve(ctx, pc) })
	}
	return g.Wait()
}
