package l7

import (
	"bytes"
)

// Limits of a request or response head.
const (
	// MaxHeadBytes bounds a head (request line or status line and every
	// field): more is answered 431.
	MaxHeadBytes = 64 << 10
	// MaxHeaders bounds the number of fields in a head: more is 431.
	MaxHeaders = 128
)

// parseError is a head the proxy refuses, with the status it answers.
type parseError struct {
	status int
	msg    string
}

func (e *parseError) Error() string { return e.msg }

// The parse errors are values so the parser never allocates.
var (
	errMalformed      = &parseError{400, "malformed request"}
	errBadRequestLine = &parseError{400, "malformed request line"}
	errBadHeader      = &parseError{400, "malformed header field"}
	errBadHost        = &parseError{400, "missing or repeated Host"}
	errBadLength      = &parseError{400, "invalid Content-Length"}
	errLengthAndTE    = &parseError{400, "both Content-Length and Transfer-Encoding"}
	errUnsupportedTE  = &parseError{501, "unsupported Transfer-Encoding"}
	errVersion        = &parseError{505, "unsupported HTTP version"}
	errExpectation    = &parseError{417, "unsupported expectation"}
	errMethod         = &parseError{405, "CONNECT is not proxied"}
	errTooManyHeaders = &parseError{431, "too many header fields"}
	errHeadTooLarge   = &parseError{431, "request head too large"}
	errBadStatusLine  = &parseError{502, "malformed status line"}
	errBadResponse    = &parseError{502, "malformed response header"}
)

// Body framing.
const (
	bodyNone    = iota // no body
	bodyLength         // Content-Length bytes
	bodyChunked        // chunked transfer coding
	bodyClose          // until the connection closes (responses only)
)

// request is a parsed request head. Its slices point into the head buffer
// it was parsed from; it is reused for every request of a connection.
type request struct {
	method   []byte
	target   []byte // as sent, or the path of an absolute-form target
	path     []byte // target up to '?', for routing
	minor    int    // HTTP/1.minor
	hdrs     []header
	host     []byte // Host value (or the absolute-form authority)
	absolute bool   // the target was in absolute form

	framing       int
	contentLength int64
	close         bool // the client asked to close after this request
	keepAlive10   bool // HTTP/1.0 Connection: keep-alive
	upgradeWS     bool // Connection: upgrade with Upgrade: websocket
	expect100     bool
	acceptGzip    bool
	connTokens    [][]byte // fields named by Connection: removed when forwarding
}

func (r *request) reset() {
	*r = request{hdrs: r.hdrs[:0], connTokens: r.connTokens[:0]}
}

// response is a parsed response head, reused like request.
type response struct {
	status int
	minor  int
	reason []byte
	hdrs   []header

	framing         int
	contentLength   int64
	close           bool
	upgradeWS       bool
	contentType     []byte
	contentEncoding bool
	contentRange    bool
	varyAE          bool // a Vary field names Accept-Encoding or *
	connTokens      [][]byte
}

func (r *response) reset() {
	*r = response{hdrs: r.hdrs[:0], connTokens: r.connTokens[:0]}
}

// headEnd returns the length of the head at the start of b, including the
// blank line that ends it, or -1 if b does not hold a whole head yet. from
// is where the search may resume. Bare LF line ends are accepted as RFC 9112
// allows; the proxy writes CRLF whatever it read.
func headEnd(b []byte, from int) int {
	for i := from; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
	return -1
}

// nextLine splits b at the first line end (CRLF or LF).
func nextLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, false
	}
	line, rest = b[:i], b[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest, true
}

// parseRequest parses a whole request head (as headEnd delimits it) into r.
func parseRequest(head []byte, r *request) error {
	r.reset()
	// RFC 9112 2.2: ignore empty lines before the request line.
	for len(head) > 0 && (head[0] == '\r' || head[0] == '\n') {
		head = head[1:]
	}
	line, rest, ok := nextLine(head)
	if !ok {
		return errMalformed
	}
	if err := parseRequestLine(line, r); err != nil {
		return err
	}
	if err := parseFields(rest, &r.hdrs, errBadHeader); err != nil {
		return err
	}
	hosts := 0
	te := false
	for i := range r.hdrs {
		h := &r.hdrs[i]
		switch h.kind {
		case hHost:
			hosts++
			if !r.absolute {
				r.host = h.value
			}
		case hContentLength:
			n, ok := parseLength(h.value)
			if !ok || (r.framing == bodyLength && n != r.contentLength) {
				return errBadLength
			}
			r.framing, r.contentLength = bodyLength, n
		case hTransferEncoding:
			// Only "chunked" alone is accepted: anything else could frame the
			// body differently here and at the backend.
			if te || !equalFold(trimOWS(h.value), "chunked") {
				return errUnsupportedTE
			}
			te = true
		case hConnection:
			for v := h.value; len(v) > 0; {
				var tok []byte
				tok, v = nextToken(v)
				switch {
				case len(tok) == 0:
				case equalFold(tok, "close"):
					r.close = true
				case equalFold(tok, "keep-alive"):
					r.keepAlive10 = true
				case equalFold(tok, "upgrade"):
					r.upgradeWS = true // confirmed by Upgrade below
				default:
					r.connTokens = append(r.connTokens, tok)
				}
			}
		case hExpect:
			if !equalFold(trimOWS(h.value), "100-continue") {
				return errExpectation
			}
			r.expect100 = true
		case hAcceptEncoding:
			r.acceptGzip = r.acceptGzip || acceptsGzip(h.value)
		}
	}
	if te {
		if r.framing == bodyLength {
			return errLengthAndTE
		}
		if r.minor == 0 {
			return errUnsupportedTE
		}
		r.framing = bodyChunked
	}
	if r.framing == bodyLength && r.contentLength == 0 {
		r.framing = bodyNone
	}
	// RFC 9112 3.2: an HTTP/1.1 request has exactly one Host.
	if hosts > 1 || (hosts == 0 && r.minor == 1) || !validHost(r.host) {
		return errBadHost
	}
	if r.upgradeWS {
		r.upgradeWS = false
		for i := range r.hdrs {
			if r.hdrs[i].kind == hUpgrade && hasToken(r.hdrs[i].value, "websocket") {
				r.upgradeWS = true
			}
		}
	}
	if r.minor == 0 {
		r.close = r.close || !r.keepAlive10
	}
	return nil
}

func parseRequestLine(line []byte, r *request) error {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return errBadRequestLine
	}
	r.method = line[:sp]
	for _, c := range r.method {
		if !isTchar(c) {
			return errBadRequestLine
		}
	}
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return errBadRequestLine
	}
	target, version := line[:sp], line[sp+1:]
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return errBadRequestLine
		}
	}
	if len(version) != 8 || string(version[:7]) != "HTTP/1." {
		if len(version) >= 5 && string(version[:5]) == "HTTP/" {
			return errVersion
		}
		return errBadRequestLine
	}
	switch version[7] {
	case '0':
		r.minor = 0
	case '1':
		r.minor = 1
	default:
		return errVersion
	}
	switch {
	case target[0] == '/':
	case len(target) > 7 && equalFold(target[:7], "http://"):
		// Absolute form: its authority replaces Host (RFC 9112 3.2.2).
		rest := target[7:]
		i := bytes.IndexAny(rest, "/?")
		if i < 0 {
			r.host, target = rest, []byte("/")
		} else {
			r.host, target = rest[:i], rest[i:]
			if target[0] == '?' {
				return errBadRequestLine // "http://h?q" has no path: rare, refuse
			}
		}
		if len(r.host) == 0 {
			return errBadRequestLine
		}
		r.absolute = true
	case len(target) == 1 && target[0] == '*' && string(r.method) == "OPTIONS":
	case string(r.method) == "CONNECT":
		return errMethod
	default:
		return errBadRequestLine
	}
	r.target = target
	r.path = target
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		r.path = target[:i]
	}
	return nil
}

// parseFields parses header fields up to the blank line into hdrs.
func parseFields(b []byte, hdrs *[]header, bad *parseError) error {
	for {
		line, rest, ok := nextLine(b)
		if !ok {
			return bad
		}
		b = rest
		if len(line) == 0 {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return bad // obsolete line folding (RFC 9112 5.2)
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return bad
		}
		name := line[:colon]
		for _, c := range name {
			if !isTchar(c) {
				return bad // includes whitespace before the colon
			}
		}
		value := trimOWS(line[colon+1:])
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return bad
			}
		}
		if len(*hdrs) == MaxHeaders {
			if bad == errBadHeader {
				return errTooManyHeaders
			}
			return bad
		}
		*hdrs = append(*hdrs, header{name: name, value: value, kind: classify(name)})
	}
}

// parseLength parses a Content-Length value: digits only, no sign, no
// overflow. A list of equal values ("5, 5") is accepted as RFC 9110 allows.
func parseLength(v []byte) (int64, bool) {
	first := int64(-1)
	for len(v) > 0 {
		var tok []byte
		tok, v = nextToken(v)
		if len(tok) == 0 || len(tok) > 18 {
			return 0, false
		}
		var n int64
		for _, c := range tok {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int64(c-'0')
		}
		if first >= 0 && n != first {
			return 0, false
		}
		first = n
	}
	return first, first >= 0
}

// validHost accepts an empty host (HTTP/1.0) or reg-name/IPv4/[IPv6] with an
// optional port: enough to refuse injection into routing and logs.
func validHost(h []byte) bool {
	for _, c := range h {
		if c <= ' ' || c >= 0x7f || c == '/' || c == '\\' || c == '@' || c == '?' || c == '#' || c == ',' {
			return false
		}
	}
	return true
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip: listed
// (or "*") without q=0.
func acceptsGzip(v []byte) bool {
	for len(v) > 0 {
		var tok []byte
		tok, v = nextToken(v)
		coding, params := tok, []byte(nil)
		if i := bytes.IndexByte(tok, ';'); i >= 0 {
			coding, params = trimOWS(tok[:i]), tok[i+1:]
		}
		if !equalFold(coding, "gzip") && !equalFold(coding, "x-gzip") && !(len(coding) == 1 && coding[0] == '*') {
			continue
		}
		return !qZero(params)
	}
	return false
}

// qZero reports a q parameter of 0 (q=0, q=0.0, q=0.000).
func qZero(params []byte) bool {
	for len(params) > 0 {
		var p []byte
		if i := bytes.IndexByte(params, ';'); i >= 0 {
			p, params = trimOWS(params[:i]), params[i+1:]
		} else {
			p, params = trimOWS(params), nil
		}
		if len(p) < 2 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=' {
			continue
		}
		q := p[2:]
		if len(q) == 0 || q[0] != '0' {
			return false
		}
		for _, c := range q[1:] {
			if c != '.' && c != '0' {
				return false
			}
		}
		return true
	}
	return false
}

// parseResponse parses a whole response head into r.
func parseResponse(head []byte, r *response) error {
	r.reset()
	line, rest, ok := nextLine(head)
	if !ok {
		return errBadStatusLine
	}
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' {
		return errBadStatusLine
	}
	switch line[7] {
	case '0':
		r.minor = 0
	case '1':
		r.minor = 1
	default:
		return errBadStatusLine
	}
	code := line[9:12]
	if code[0] < '1' || code[0] > '5' || code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9' {
		return errBadStatusLine
	}
	r.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if len(line) > 12 {
		if line[12] != ' ' {
			return errBadStatusLine
		}
		r.reason = line[13:]
	}
	for _, c := range r.reason {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return errBadStatusLine
		}
	}
	if err := parseFields(rest, &r.hdrs, errBadResponse); err != nil {
		return err
	}
	r.framing = bodyClose
	te := false
	upgrade := false
	for i := range r.hdrs {
		h := &r.hdrs[i]
		switch h.kind {
		case hContentLength:
			n, ok := parseLength(h.value)
			if !ok || (r.framing == bodyLength && n != r.contentLength) {
				return errBadResponse
			}
			r.framing, r.contentLength = bodyLength, n
		case hTransferEncoding:
			// A response may carry other codings before chunked; chunked
			// must be last, else the body runs to the close.
			te = true
			last := []byte(nil)
			for v := h.value; len(v) > 0; {
				var tok []byte
				tok, v = nextToken(v)
				if len(tok) > 0 {
					last = tok
				}
			}
			if !equalFold(last, "chunked") {
				return errBadResponse
			}
		case hConnection:
			for v := h.value; len(v) > 0; {
				var tok []byte
				tok, v = nextToken(v)
				switch {
				case len(tok) == 0, equalFold(tok, "keep-alive"):
				case equalFold(tok, "close"):
					r.close = true
				case equalFold(tok, "upgrade"):
					upgrade = true
				default:
					r.connTokens = append(r.connTokens, tok)
				}
			}
		case hUpgrade:
			r.upgradeWS = hasToken(h.value, "websocket")
		case hContentType:
			r.contentType = h.value
		case hContentEncoding:
			r.contentEncoding = len(h.value) > 0 && !equalFold(h.value, "identity")
		case hContentRange:
			r.contentRange = true
		case hVary:
			r.varyAE = r.varyAE || hasToken(h.value, "accept-encoding") || hasToken(h.value, "*")
		}
	}
	r.upgradeWS = r.upgradeWS && upgrade && r.status == 101
	if te {
		// RFC 9112 6.3: Transfer-Encoding overrides Content-Length, and the
		// connection must not be reused after such a message.
		if r.framing == bodyLength {
			r.close = true
		}
		r.framing, r.contentLength = bodyChunked, 0
	}
	if r.minor == 0 && r.framing != bodyLength && r.framing != bodyChunked {
		r.close = true
	}
	if r.framing == bodyClose {
		r.close = true
	}
	return nil
}

// hasBody reports whether a response to method has a body (RFC 9112 6.3).
func (r *response) hasBody(head bool) bool {
	if head || r.status < 200 || r.status == 204 || r.status == 304 {
		return false
	}
	return !(r.framing == bodyLength && r.contentLength == 0)
}
