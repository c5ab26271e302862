package l7

import (
	"bufio"
	"errors"
	"io"
	"sync"
)

// Buffer sizes. A connection reads into a small buffer; a head that does
// not fit moves to a large one (MaxHeadBytes plus slack), given back once
// the head is handled.
const (
	smallBuf  = 4 << 10
	largeBuf  = MaxHeadBytes + 4<<10
	copyBuf   = 32 << 10
	writerBuf = 8 << 10
)

// bufPools holds the byte buffers of every size the engine uses, so a
// connection borrows rather than allocates.
type bufPools struct {
	small, large, copy sync.Pool
	writers            sync.Pool // *bufio.Writer of writerBuf bytes
}

func newBufPools() *bufPools {
	p := &bufPools{}
	p.small.New = func() any { b := make([]byte, smallBuf); return &b }
	p.large.New = func() any { b := make([]byte, largeBuf); return &b }
	p.copy.New = func() any { b := make([]byte, copyBuf); return &b }
	p.writers.New = func() any { return bufio.NewWriterSize(nil, writerBuf) }
	return p
}

// errHeadIncomplete is a connection that ended inside a head.
var errHeadIncomplete = errors.New("connection closed inside a message head")

// reader is a connection's read side: a buffer the head parser works on in
// place, and the body readers drain before reading the socket directly.
type reader struct {
	c     io.Reader
	pools *bufPools
	bufp  *[]byte
	buf   []byte
	r, w  int
	large bool
	// onStart runs when the first bytes of a head are buffered; onWait
	// before the reader blocks for the rest of a head it has started. Both
	// may be nil.
	onStart, onWait func()
}

func (rd *reader) init(c io.Reader, pools *bufPools) {
	rd.c, rd.pools = c, pools
	rd.bufp = pools.small.Get().(*[]byte)
	rd.buf = *rd.bufp
	rd.r, rd.w, rd.large = 0, 0, false
}

// release gives the buffer back; the reader is unusable until init.
func (rd *reader) release() {
	if rd.bufp == nil {
		return
	}
	if rd.large {
		rd.pools.large.Put(rd.bufp)
	} else {
		rd.pools.small.Put(rd.bufp)
	}
	rd.bufp, rd.buf = nil, nil
}

func (rd *reader) buffered() int { return rd.w - rd.r }

// readHead reads until a whole head is buffered and returns it, consumed
// from the reader; it stays valid until the next read. limit bounds the
// head's size.
func (rd *reader) readHead(limit int) ([]byte, error) {
	scan := 0
	started, waited := rd.w > rd.r, false
	if started && rd.onStart != nil {
		rd.onStart()
	}
	for {
		if n := headEnd(rd.buf[rd.r:rd.w], scan); n >= 0 {
			if n > limit {
				return nil, errHeadTooLarge
			}
			h := rd.buf[rd.r : rd.r+n]
			rd.r += n
			return h, nil
		}
		have := rd.w - rd.r
		if have >= limit {
			return nil, errHeadTooLarge
		}
		scan = max(0, have-2)
		if rd.w == len(rd.buf) {
			rd.makeRoom()
		}
		if started && !waited && rd.onWait != nil {
			rd.onWait()
			waited = true
		}
		n, err := rd.c.Read(rd.buf[rd.w:])
		rd.w += n
		if n > 0 && !started {
			started = true
			if rd.onStart != nil {
				rd.onStart()
			}
		}
		if err != nil {
			if rd.w > rd.r {
				if h := headEnd(rd.buf[rd.r:rd.w], scan); h >= 0 {
					continue
				}
				if errors.Is(err, io.EOF) {
					return nil, errHeadIncomplete
				}
			}
			return nil, err
		}
	}
}

// makeRoom compacts the buffer, or moves to the large buffer when the
// pending bytes already fill the small one.
func (rd *reader) makeRoom() {
	have := rd.w - rd.r
	if rd.r > 0 && have < len(rd.buf)/2 {
		copy(rd.buf, rd.buf[rd.r:rd.w])
		rd.r, rd.w = 0, have
		return
	}
	if rd.large {
		copy(rd.buf, rd.buf[rd.r:rd.w])
		rd.r, rd.w = 0, have
		return
	}
	lp := rd.pools.large.Get().(*[]byte)
	copy(*lp, rd.buf[rd.r:rd.w])
	rd.pools.small.Put(rd.bufp)
	rd.bufp, rd.buf, rd.large = lp, *lp, true
	rd.r, rd.w = 0, have
}

// shrink returns to the small buffer after a large head, when what is
// pending fits.
func (rd *reader) shrink() {
	if !rd.large || rd.w-rd.r > smallBuf {
		return
	}
	sp := rd.pools.small.Get().(*[]byte)
	n := copy(*sp, rd.buf[rd.r:rd.w])
	rd.pools.large.Put(rd.bufp)
	rd.bufp, rd.buf, rd.large = sp, *sp, false
	rd.r, rd.w = 0, n
}

// Read reads buffered bytes first, then from the connection: directly into
// p when p is at least as large as the buffer.
func (rd *reader) Read(p []byte) (int, error) {
	if rd.r < rd.w {
		n := copy(p, rd.buf[rd.r:rd.w])
		rd.r += n
		return n, nil
	}
	if len(p) >= len(rd.buf) {
		return rd.c.Read(p)
	}
	rd.r, rd.w = 0, 0
	n, err := rd.c.Read(rd.buf)
	rd.w = n
	if n > 0 {
		m := copy(p, rd.buf[:n])
		rd.r = m
		return m, nil
	}
	return 0, err
}

// peek returns up to n buffered bytes, reading once if none are buffered.
func (rd *reader) peek() ([]byte, error) {
	if rd.r == rd.w {
		rd.r, rd.w = 0, 0
		n, err := rd.c.Read(rd.buf)
		rd.w = n
		if n == 0 {
			return nil, err
		}
	}
	return rd.buf[rd.r:rd.w], nil
}

func (rd *reader) discard(n int) { rd.r += n }

// readLine returns the next line (without its CRLF or LF), at most limit
// bytes; valid until the next read.
func (rd *reader) readLine(limit int) ([]byte, error) {
	scan := 0
	for {
		b := rd.buf[rd.r:rd.w]
		for i := scan; i < len(b); i++ {
			if b[i] == '\n' {
				line := b[:i]
				rd.r += i + 1
				if len(line) > 0 && line[len(line)-1] == '\r' {
					line = line[:len(line)-1]
				}
				return line, nil
			}
		}
		scan = len(b)
		if len(b) >= limit {
			return nil, errMalformedChunk
		}
		if rd.w == len(rd.buf) {
			copy(rd.buf, b)
			rd.r, rd.w = 0, len(b)
		}
		n, err := rd.c.Read(rd.buf[rd.w:])
		rd.w += n
		if n == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}
