package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// maxNameLen bounds a whoami answer, so a peer that is not a serve backend cannot make
// the helpers read forever.
const maxNameLen = 1024

// WhoAmITCP sends "whoami\n" as the first bytes of conn (a new connection to a TCPEcho,
// possibly through a balancer) and returns the name in the answer. It reads no further
// than the answer's newline, so conn can go on echoing. ctx bounds the exchange; conn's
// deadline is cleared afterwards.
func WhoAmITCP(ctx context.Context, conn net.Conn) (string, error) {
	defer bindDeadline(ctx, conn)()
	if _, err := conn.Write([]byte(whoamiLine)); err != nil {
		return "", fmt.Errorf("whoami tcp %s: write: %w", conn.RemoteAddr(), ctxErr(ctx, err))
	}
	var name []byte
	var b [1]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			return "", fmt.Errorf("whoami tcp %s: read: %w", conn.RemoteAddr(), ctxErr(ctx, err))
		}
		if b[0] == '\n' {
			return string(name), nil
		}
		if len(name) == maxNameLen {
			return "", fmt.Errorf("whoami tcp %s: answer longer than %d bytes", conn.RemoteAddr(), maxNameLen)
		}
		name = append(name, b[0])
	}
}

// WhoAmIUDP sends the datagram "whoami" on conn (a connected UDP socket, from
// net.Dial("udp", ...)) and returns the name in the first datagram that comes back. It
// sends once; a lost datagram shows as ctx's error, so give ctx a deadline. conn's
// deadline is cleared afterwards.
func WhoAmIUDP(ctx context.Context, conn net.Conn) (string, error) {
	defer bindDeadline(ctx, conn)()
	if _, err := conn.Write([]byte("whoami")); err != nil {
		return "", fmt.Errorf("whoami udp %s: write: %w", conn.RemoteAddr(), ctxErr(ctx, err))
	}
	buf := make([]byte, maxNameLen)
	n, err := conn.Read(buf)
	if err != nil {
		return "", fmt.Errorf("whoami udp %s: read: %w", conn.RemoteAddr(), ctxErr(ctx, err))
	}
	return string(buf[:n]), nil
}

// bindDeadline makes conn's I/O end when ctx does (at its deadline or on
// cancellation) and returns the function that undoes it.
func bindDeadline(ctx context.Context, conn net.Conn) func() {
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = conn.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired // let it finish before clearing the deadline
		}
		_ = conn.SetDeadline(time.Time{})
	}
}

// ctxErr reports ctx's error when the I/O failed at the deadline bindDeadline set.
func ctxErr(ctx context.Context, err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if _, ok := ctx.Deadline(); ok { // the socket noticed before ctx's timer fired
		return context.DeadlineExceeded
	}
	return err
}
