package l7

import (
	"errors"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Block decodes a request's header block, a HEADERS frame and its
// CONTINUATIONs, with the connection's HPACK decoder (RFC 7541) into
// buffers kept for the next block: fields are offsets into one arena.
// It checks what RFC 9113 §8.2 asks of every field; fromFields checks the
// request's meaning.
type h2Block struct {
	dec *hpack.Decoder

	stream  uint32
	end     bool // END_STREAM on the HEADERS
	prio    http2.PriorityParam
	hasPrio bool

	fields     []h2BlockField
	arena      []byte
	remain     uint32 // header list bytes still allowed (SETTINGS_MAX_HEADER_LIST_SIZE)
	sawRegular bool
	truncated  bool  // over the list size: answered 431
	invalid    error // a malformed field: the stream is reset
}

// h2BlockField is one decoded field: name at arena[start:mid], value at
// arena[mid:end].
type h2BlockField struct{ start, mid, end int }

func newH2Block() *h2Block {
	b := &h2Block{}
	b.dec = hpack.NewDecoder(4096, b.emit)
	b.dec.SetMaxStringLength(MaxHeadBytes)
	return b
}

func (b *h2Block) name(f h2BlockField) []byte  { return b.arena[f.start:f.mid:f.mid] }
func (b *h2Block) value(f h2BlockField) []byte { return b.arena[f.mid:f.end:f.end] }

// start begins the block of a HEADERS frame.
func (b *h2Block) start(f *http2.HeadersFrame) {
	b.stream, b.end = f.StreamID, f.StreamEnded()
	b.prio, b.hasPrio = f.Priority, f.HasPriority()
	b.fields, b.arena = b.fields[:0], b.arena[:0]
	b.remain = MaxHeadBytes
	b.sawRegular, b.truncated, b.invalid = false, false, nil
	b.dec.SetEmitEnabled(true)
}

var (
	errPseudoAfterRegular = errors.New("pseudo-header field after a regular one")
	errBadFieldName       = errors.New("invalid header field name")
	errBadFieldValue      = errors.New("invalid header field value")
)

// emit takes one decoded field; after a malformed one or past the size
// limit the rest are decoded (the HPACK state must advance) but dropped.
func (b *h2Block) emit(hf hpack.HeaderField) {
	switch {
	case !httpguts.ValidHeaderFieldValue(hf.Value):
		b.invalid = errBadFieldValue
	case strings.HasPrefix(hf.Name, ":"):
		if b.sawRegular {
			b.invalid = errPseudoAfterRegular
		}
	default:
		b.sawRegular = true
		if !validWireName(hf.Name) {
			b.invalid = errBadFieldName
		}
	}
	if b.invalid != nil {
		b.dec.SetEmitEnabled(false)
		return
	}
	if size := hf.Size(); size > b.remain {
		b.truncated, b.remain = true, 0
		b.dec.SetEmitEnabled(false)
		return
	} else {
		b.remain -= size
	}
	start := len(b.arena)
	b.arena = append(b.arena, hf.Name...)
	mid := len(b.arena)
	b.arena = append(b.arena, hf.Value...)
	b.fields = append(b.fields, h2BlockField{start, mid, len(b.arena)})
}

// write decodes one fragment; an error is the connection's (RFC 9113
// §4.3: a block that cannot be decoded leaves the HPACK state unknown).
// A CONTINUATION of a block already refused is not decoded: its sender
// is closed off, as x/net's server does.
func (b *h2Block) write(frag []byte, continuation bool) error {
	if continuation && (b.truncated || b.invalid != nil) {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if _, err := b.dec.Write(frag); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	return nil
}

// finish ends the block.
func (b *h2Block) finish() error {
	if err := b.dec.Close(); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	return nil
}

// validWireName is a lower-case token (RFC 9113 §8.2.1).
func validWireName(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 0x80 || !httpguts.IsTokenRune(rune(c)) || ('A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// h2RequestError is a malformed HTTP/2 request (RFC 9113 §8.1.1): the
// stream is reset with PROTOCOL_ERROR.
type h2RequestError string

func (e h2RequestError) Error() string { return "malformed request: " + string(e) }

// fromFields turns a request's decoded header block into the parsed form
// the exchange shares with HTTP/1.1, in the stream's own buffers.
func (s *h2Stream) fromFields(b *h2Block) (tooLarge bool, err error) {
	if b.truncated || len(b.fields) > MaxHeaders {
		return true, nil
	}
	s.arena = append(s.arena[:0], b.arena...)
	arena := s.arena
	req := &s.x.req
	req.minor = 1
	var seen [4]bool // :method, :path, :scheme, :authority
	var host []byte
	cookies := s.cookie[:0]
	for _, f := range b.fields {
		name, value := arena[f.start:f.mid:f.mid], arena[f.mid:f.end:f.end]
		if name[0] == ':' {
			i := -1
			switch string(name) {
			case ":method":
				i, req.method = 0, value
			case ":path":
				if len(value) == 0 {
					return false, h2RequestError("empty :path")
				}
				i = 1
				req.setTarget(value)
			case ":scheme":
				i = 2
			case ":authority":
				i, req.host = 3, value
			default:
				return false, h2RequestError(string(name) + " in a request")
			}
			if seen[i] {
				return false, h2RequestError("duplicate " + string(name))
			}
			seen[i] = true
			continue
		}
		if h2ConnectionSpecific(name) {
			return false, h2RequestError("connection-specific field " + string(name))
		}
		switch string(name) {
		case "te":
			if string(value) != "trailers" {
				return false, h2RequestError("te other than trailers")
			}
			continue
		case "host":
			host = value
			continue
		case "cookie":
			cookies = appendCookie(cookies, value)
			continue
		case "content-length":
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || (s.declLen >= 0 && s.declLen != n) {
				return false, h2RequestError("bad content-length")
			}
			s.declLen = n
		case "expect":
			s.expect100 = equalFold(value, "100-continue")
			continue
		}
		req.addH2Field(name, value)
	}
	// CONNECT has neither :scheme nor :path (RFC 9113 §8.5).
	for i, name := range [...]string{":method", ":path", ":scheme"} {
		if !seen[i] && (i == 0 || string(req.method) != "CONNECT") {
			return false, h2RequestError("no " + name)
		}
	}
	if req.host == nil {
		req.host = host
	}
	if len(cookies) > 0 {
		s.cookie = cookies
		req.addH2Field([]byte("cookie"), cookies)
	}
	switch {
	case b.end || s.declLen == 0:
		req.framing = bodyNone
		s.expect100 = false
	case s.declLen > 0:
		req.framing, req.contentLength = bodyLength, s.declLen
	default:
		req.framing = bodyChunked
	}
	return false, nil
}
