package l7

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawSocket reads and writes a non-blocking socket with raw system calls,
// waiting for readiness through Go's network poller (syscall.RawConn), so
// deadlines and Close work as on any net.Conn.
//
// Why not the socket's own Read and Write: they enter the system call
// through the runtime's entersyscall, which wakes the sysmon thread
// whenever sysmon sleeps because every P was idle. A proxy at moderate load
// goes idle between requests, so each request paid a futex wake, a switch
// to sysmon on the same core, and sysmon's 20 µs polling until it slept
// again: about 40% of xlbd's CPU at half load (bench/RESULTS.md, "Where
// xlb's L7 CPU goes"). A non-blocking read or write never blocks, so it
// needs no entersyscall; EAGAIN hands the wait to the poller as before.
//
// One reader and one writer at a time, like the connections it serves; the
// callbacks are bound once so a call allocates nothing.
type rawSocket struct {
	rc syscall.RawConn

	rbuf    []byte
	rn      int
	rerr    syscall.Errno
	readFn  func(fd uintptr) bool
	wbuf    []byte
	wn      int
	werr    syscall.Errno
	writeFn func(fd uintptr) bool
}

func (s *rawSocket) init(rc syscall.RawConn) {
	s.rc = rc
	s.readFn, s.writeFn = s.doRead, s.doWrite
}

func (s *rawSocket) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rbuf, s.rn, s.rerr = p, 0, 0
	err := s.rc.Read(s.readFn)
	s.rbuf = nil
	switch {
	case err != nil:
		return 0, err
	case s.rerr != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: s.rerr}
	case s.rn == 0:
		return 0, io.EOF
	}
	return s.rn, nil
}

// doRead reports false to wait for readability.
func (s *rawSocket) doRead(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&s.rbuf[0])), uintptr(len(s.rbuf)))
		switch e {
		case 0:
			s.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			s.rerr = e
			return true
		}
	}
}

// Write writes all of p, waiting for room as often as needed.
func (s *rawSocket) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.wbuf, s.wn, s.werr = p, 0, 0
	err := s.rc.Write(s.writeFn)
	s.wbuf = nil
	switch {
	case err != nil:
		return s.wn, err
	case s.werr != 0:
		return s.wn, &net.OpError{Op: "write", Net: "tcp", Err: s.werr}
	}
	return s.wn, nil
}

// doWrite reports false to wait for room in the send buffer.
func (s *rawSocket) doWrite(fd uintptr) bool {
	for s.wn < len(s.wbuf) {
		rest := s.wbuf[s.wn:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
		switch e {
		case 0:
			s.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			s.werr = e
			return true
		}
	}
	return true
}

// rawTCP is a TCP connection whose Read and Write are rawSocket's; every
// other method (deadlines, CloseWrite, splicing ReadFrom) is the
// connection's own.
type rawTCP struct {
	*net.TCPConn
	s rawSocket
}

// newRawTCP wraps c; it falls back to c itself if c has no raw access.
func newRawTCP(c *net.TCPConn) clientSocket {
	rc, err := c.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawTCP{TCPConn: c}
	r.s.init(rc)
	return r
}

func (r *rawTCP) Read(p []byte) (int, error)  { return r.s.Read(p) }
func (r *rawTCP) Write(p []byte) (int, error) { return r.s.Write(p) }

// spliceSource is the reader to hand to a TCPConn's ReadFrom: the
// connection itself, so that the kernel splices instead of Go copying.
func spliceSource(c net.Conn) io.Reader {
	if r, ok := c.(*rawTCP); ok {
		return r.TCPConn
	}
	return c
}
