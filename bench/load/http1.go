package load

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// h1Buffer is the read buffer of a connection; a status line or header longer than
// this is a protocol error.
const h1Buffer = 16 << 10

// h1Target is what every HTTP/1.1 worker of a run shares, read only.
type h1Target struct {
	addr    string      // host:port to dial
	tls     *tls.Config // nil for http
	req     []byte      // the whole request, prebuilt
	head    bool        // HEAD: answers carry no body
	newConn bool        // one request per connection
	reset   bool        // close those with a RST
	timeout time.Duration
	dial    Dialer
}

// h1Worker is a small HTTP/1.1 client on one connection at a time: it writes the
// prebuilt request and parses the status line, the framing headers and the body
// (Content-Length, chunked or up to EOF), allocating nothing per request.
type h1Worker struct {
	t      *h1Target
	ctx    context.Context
	st     *stats
	conn   net.Conn
	br     *bufio.Reader
	cr     countReader
	unhook func() bool // drops the AfterFunc that aborts conn when ctx ends
}

func newH1Worker(ctx context.Context, t *h1Target) *h1Worker {
	w := &h1Worker{t: t, ctx: ctx}
	w.br = bufio.NewReaderSize(&w.cr, h1Buffer)
	return w
}

// countReader counts the bytes read from a connection.
type countReader struct {
	conn net.Conn
	st   *stats
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.conn.Read(p)
	c.st.recvBytes(n)
	return n, err
}

func (w *h1Worker) op(st *stats) errKind {
	w.cr.st = st
	for retried := false; ; retried = true {
		reused := w.conn != nil
		if !reused {
			if err := w.connect(st); err != nil {
				return kindConnect
			}
		}
		k := w.exchange(st)
		// A kept-alive connection the server closed while idle fails before any
		// answer: the server never saw the request, so send it again on a new
		// connection, once, as browsers and net/http do.
		if (k == kindEOF || k == kindReset) && reused && !retried && w.ctx.Err() == nil {
			continue
		}
		return k
	}
}

// exchange sends the request on the open connection and reads the response.
func (w *h1Worker) exchange(st *stats) errKind {
	if err := w.conn.SetDeadline(time.Now().Add(w.t.timeout)); err != nil {
		w.drop()
		return classify(err, false)
	}
	n, err := w.conn.Write(w.t.req)
	st.sentBytes(n)
	if err != nil {
		w.drop()
		return classify(err, false)
	}
	code, keep, err := w.readResponse()
	if err != nil {
		w.drop()
		return classify(err, false) // a cut-off answer is already errShort
	}
	if !keep || w.t.newConn {
		if l, ok := w.conn.(interface{ SetLinger(int) error }); ok && w.t.reset {
			l.SetLinger(0) //nolint:errcheck // then Close sends a FIN, no harm
		}
		w.drop()
	}
	return statusKind(code)
}

func (w *h1Worker) connect(st *stats) error {
	ctx, cancel := context.WithTimeout(w.ctx, w.t.timeout)
	defer cancel()
	c, err := w.t.dial(ctx, "tcp", w.t.addr)
	if err != nil {
		return err
	}
	st.conn()
	if w.t.tls != nil {
		tc := tls.Client(c, w.t.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return err
		}
		c = tc
	}
	w.conn = c
	w.cr.conn = c
	w.br.Reset(&w.cr)
	// Ending the run unblocks an op in flight; the op's error is then not counted.
	w.unhook = context.AfterFunc(w.ctx, func() { c.SetDeadline(time.Unix(1, 0)) }) //nolint:errcheck
	return nil
}

func (w *h1Worker) drop() {
	if w.conn == nil {
		return
	}
	w.unhook()
	w.conn.Close()
	w.conn = nil
}

func (w *h1Worker) close() { w.drop() }

// readResponse reads one response, skipping 1xx interim ones, and says whether the
// connection can carry another request.
func (w *h1Worker) readResponse() (code int, keep bool, err error) {
	for {
		code, keep, err = w.readOne()
		if err != nil || code >= 200 {
			return code, keep, err
		}
		if code == 101 { // we never ask to switch protocols
			return 0, false, fmt.Errorf("unexpected 101: %w", errProtocol)
		}
	}
}

func (w *h1Worker) readOne() (code int, keep bool, err error) {
	line, err := w.readLine()
	if err != nil {
		return 0, false, err
	}
	code, minor, ok := parseStatusLine(line)
	if !ok {
		return 0, false, fmt.Errorf("status line %q: %w", truncate(line), errProtocol)
	}
	keep = minor >= 1
	var (
		length  int64 = -1
		chunked bool
	)
	for {
		line, err := w.readLine()
		if err != nil {
			return 0, false, eofIsShort(err)
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := splitHeader(line)
		if !ok {
			return 0, false, fmt.Errorf("header %q: %w", truncate(line), errProtocol)
		}
		switch {
		case equalFold(name, "content-length"):
			n, ok := parseLength(value)
			if !ok || (length >= 0 && n != length) {
				return 0, false, fmt.Errorf("content-length %q: %w", truncate(value), errProtocol)
			}
			length = n
		case equalFold(name, "transfer-encoding"):
			chunked = equalFold(lastToken(value), "chunked")
			if !chunked { // a body delimited by the close
				keep = false
			}
		case equalFold(name, "connection"):
			switch {
			case hasToken(value, "close"):
				keep = false
			case minor == 0 && hasToken(value, "keep-alive"):
				keep = true
			}
		}
	}
	switch {
	case code < 200 || code == 204 || code == 304 || w.t.head:
		return code, keep, nil
	case chunked:
		return code, keep, w.readChunked()
	case length >= 0:
		if _, err := w.br.Discard(int(length)); err != nil {
			return 0, false, eofIsShort(err)
		}
		return code, keep, nil
	}
	// No length: the body runs to the end of the connection.
	for {
		if _, err := w.br.Discard(h1Buffer); err != nil {
			if isEOF(err) {
				return code, false, nil
			}
			return 0, false, err
		}
	}
}

func (w *h1Worker) readChunked() error {
	for {
		line, err := w.readLine()
		if err != nil {
			return eofIsShort(err)
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return fmt.Errorf("chunk size %q: %w", truncate(line), errProtocol)
		}
		if size == 0 {
			for { // trailers up to the blank line
				line, err := w.readLine()
				if err != nil {
					return eofIsShort(err)
				}
				if len(line) == 0 {
					return nil
				}
			}
		}
		if _, err := w.br.Discard(int(size)); err != nil {
			return eofIsShort(err)
		}
		line, err = w.readLine()
		if err != nil {
			return eofIsShort(err)
		}
		if len(line) != 0 {
			return fmt.Errorf("chunk not followed by CRLF: %w", errProtocol)
		}
	}
}

// readLine returns the next line without its CRLF (or LF). The slice is valid until
// the next read.
func (w *h1Worker) readLine() ([]byte, error) {
	line, err := w.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("line longer than %d bytes: %w", h1Buffer, errProtocol)
	}
	if err != nil {
		if len(line) > 0 {
			return nil, eofIsShort(err)
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// eofIsShort turns an EOF in the middle of a response into a short read.
func eofIsShort(err error) error {
	if isEOF(err) {
		return fmt.Errorf("%w: %w", errShort, err)
	}
	return err
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}
