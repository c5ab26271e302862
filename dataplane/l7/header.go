package l7

// hdrKind names the header fields the proxy acts on; every other field is
// hOther and passes through untouched.
type hdrKind uint8

const (
	hOther hdrKind = iota
	hHost
	hContentLength
	hTransferEncoding
	hConnection
	hKeepAlive
	hProxyConnection
	hTE
	hTrailer
	hUpgrade
	hExpect
	hCookie
	hSetCookie
	hXForwardedFor
	hXForwardedProto
	hXLBIP
	hXLBID
	hAcceptEncoding
	hContentType
	hContentEncoding
	hVary
	hContentRange
)

// header is one field of a parsed head: slices of the head's bytes.
type header struct {
	name, value []byte
	kind        hdrKind
}

// hopByHop reports the fields that describe one connection, not the message:
// never forwarded (Upgrade is re-added for WebSocket; the framing fields are
// rewritten by the proxy).
func (k hdrKind) hopByHop() bool {
	switch k {
	case hConnection, hKeepAlive, hProxyConnection, hTE, hTrailer, hUpgrade, hTransferEncoding, hContentLength:
		return true
	}
	return false
}

// classify returns the kind of a field name, compared case-insensitively.
// A switch on the length first keeps it to one comparison for most names.
func classify(name []byte) hdrKind {
	switch len(name) {
	case 2:
		if equalFold(name, "te") {
			return hTE
		}
	case 4:
		if equalFold(name, "host") {
			return hHost
		}
		if equalFold(name, "vary") {
			return hVary
		}
	case 6:
		if equalFold(name, "cookie") {
			return hCookie
		}
		if equalFold(name, "expect") {
			return hExpect
		}
	case 7:
		if equalFold(name, "trailer") {
			return hTrailer
		}
		if equalFold(name, "upgrade") {
			return hUpgrade
		}
		if equalFold(name, "x-lb-ip") {
			return hXLBIP
		}
		if equalFold(name, "x-lb-id") {
			return hXLBID
		}
	case 10:
		if equalFold(name, "connection") {
			return hConnection
		}
		if equalFold(name, "keep-alive") {
			return hKeepAlive
		}
		if equalFold(name, "set-cookie") {
			return hSetCookie
		}
	case 12:
		if equalFold(name, "content-type") {
			return hContentType
		}
	case 13:
		if equalFold(name, "content-range") {
			return hContentRange
		}
	case 14:
		if equalFold(name, "content-length") {
			return hContentLength
		}
	case 15:
		if equalFold(name, "x-forwarded-for") {
			return hXForwardedFor
		}
		if equalFold(name, "accept-encoding") {
			return hAcceptEncoding
		}
	case 16:
		if equalFold(name, "proxy-connection") {
			return hProxyConnection
		}
		if equalFold(name, "content-encoding") {
			return hContentEncoding
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			return hTransferEncoding
		}
		if equalFold(name, "x-forwarded-proto") {
			return hXForwardedProto
		}
	}
	return hOther
}

// equalFold compares b with lower, which must be lower case ASCII.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// equalFoldBytes compares two byte strings case-insensitively (ASCII).
func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// nextToken returns the first comma-separated element of list, trimmed, and
// the rest: for Connection, Transfer-Encoding, Accept-Encoding and Vary.
func nextToken(list []byte) (tok, rest []byte) {
	i := 0
	for i < len(list) && list[i] != ',' {
		i++
	}
	tok = trimOWS(list[:i])
	if i < len(list) {
		rest = list[i+1:]
	}
	return tok, rest
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// hasToken reports whether the comma-separated list holds tok (lower case).
func hasToken(list []byte, tok string) bool {
	for len(list) > 0 {
		var t []byte
		t, list = nextToken(list)
		if equalFold(t, tok) {
			return true
		}
	}
	return false
}

// isTchar reports the token characters of RFC 9110 section 5.6.2.
func isTchar(c byte) bool { return tchar[c] }

var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
