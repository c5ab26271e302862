package l7

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

var (
	errMalformedChunk = errors.New("malformed chunked encoding")
	errBodyTooLong    = errors.New("body longer than declared")
)

// maxChunkLine bounds a chunk-size line (with extensions) and a trailer line.
const maxChunkLine = 4 << 10

// body reads one message body from a reader, decoding its framing: the
// proxy re-frames what it forwards, so the two sides never disagree on where
// a message ends. It is embedded in a connection and reused.
type body struct {
	rd      *reader
	framing int
	left    int64 // bodyLength: bytes left; bodyChunked: bytes left in the chunk
	done    bool
	started bool // some of the body was read
	err     error
	n       int64 // bytes of payload read
}

func (b *body) init(rd *reader, framing int, length int64) {
	*b = body{rd: rd, framing: framing, left: length}
	switch framing {
	case bodyNone:
		b.done = true
	case bodyLength:
		b.done = length == 0
	case bodyChunked:
		b.left = -1 // read a size line first
	}
}

// Read implements io.Reader over the decoded payload.
func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.done {
		return 0, io.EOF
	}
	b.started = true
	var n int
	var err error
	switch b.framing {
	case bodyLength:
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err = b.rd.Read(p)
		b.left -= int64(n)
		if b.left == 0 {
			b.done = true
			err = nil
		} else if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
	case bodyChunked:
		n, err = b.readChunked(p)
	case bodyClose:
		n, err = b.rd.Read(p)
		if errors.Is(err, io.EOF) {
			b.done = true
		}
	}
	b.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		b.err = err // reported once the data read with it is delivered
	}
	switch {
	case n > 0:
		return n, nil
	case b.done:
		return 0, io.EOF
	case b.err != nil:
		return 0, b.err
	}
	return 0, err
}

// wouldBlock reports whether the next Read has to wait for the connection:
// the copy loops flush what they hold and move deadlines before that.
func (b *body) wouldBlock() bool {
	if b.done || b.err != nil {
		return false
	}
	buf := b.rd.buf[b.rd.r:b.rd.w]
	if b.framing != bodyChunked || b.left > 0 {
		return len(buf) == 0
	}
	// Between chunks: the CRLF ending the last chunk's data (left == 0) and
	// the next size line must be buffered.
	lines := 1
	if b.left == 0 {
		lines = 2
	}
	for i := 0; i < lines; i++ {
		j := bytes.IndexByte(buf, '\n')
		if j < 0 {
			return true
		}
		buf = buf[j+1:]
	}
	return false
}

func (b *body) readChunked(p []byte) (int, error) {
	if b.left <= 0 {
		if b.left == 0 {
			// The CRLF after a chunk's data.
			line, err := b.rd.readLine(maxChunkLine)
			if err != nil {
				return 0, err
			}
			if len(line) != 0 {
				return 0, errMalformedChunk
			}
		}
		line, err := b.rd.readLine(maxChunkLine)
		if err != nil {
			return 0, err
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return 0, errMalformedChunk
		}
		if size == 0 {
			// Trailer fields are read and dropped: the proxy does not
			// forward trailers.
			for {
				line, err := b.rd.readLine(maxChunkLine)
				if err != nil {
					return 0, err
				}
				if len(line) == 0 {
					break
				}
			}
			b.done = true
			return 0, io.EOF
		}
		b.left = size
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rd.Read(p)
	b.left -= int64(n)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// parseChunkSize parses a chunk-size line: hex digits, then optional
// extensions after ';' (ignored).
func parseChunkSize(line []byte) (int64, bool) {
	var n int64
	digits := 0
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto rest
		}
		if digits == 15 {
			return 0, false
		}
		n = n<<4 | int64(d)
		digits++
	}
rest:
	if digits == 0 {
		return 0, false
	}
	for ; i < len(line); i++ {
		switch line[i] {
		case ' ', '\t':
		case ';':
			return n, true
		default:
			return 0, false
		}
	}
	return n, true
}

// chunkedWriter writes the chunked transfer coding onto w.
type chunkedWriter struct {
	w *bufio.Writer
}

func (c chunkedWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var hdr [18]byte
	i := len(hdr) - 2
	hdr[i], hdr[i+1] = '\r', '\n'
	for n := len(p); ; n >>= 4 {
		i--
		hdr[i] = "0123456789abcdef"[n&0xf]
		if n < 16 {
			break
		}
	}
	if _, err := c.w.Write(hdr[i:]); err != nil {
		return 0, err
	}
	n, err := c.w.Write(p)
	if err != nil {
		return n, err
	}
	_, err = c.w.WriteString("\r\n")
	return n, err
}

// close writes the last chunk and an empty trailer.
func (c chunkedWriter) close() error {
	_, err := c.w.WriteString("0\r\n\r\n")
	return err
}
