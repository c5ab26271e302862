package l7

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestHTTPParseRequestValid(t *testing.T) {
	tests := []struct {
		name, head    string
		method, path  string
		target, host  string
		minor         int
		framing       int
		length        int64
		close, ws     bool
		expect, gzip  bool
		connTokens    []string
		headersParsed int
	}{
		{name: "simple", head: "GET /a/b?x=1 HTTP/1.1\r\nHost: www.example.com\r\n\r\n",
			method: "GET", path: "/a/b", target: "/a/b?x=1", host: "www.example.com", minor: 1, headersParsed: 1},
		{name: "bare LF and leading blank line", head: "\r\nGET / HTTP/1.1\nHost: h\n\n",
			method: "GET", path: "/", target: "/", host: "h", minor: 1, headersParsed: 1},
		{name: "content length", head: "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n",
			method: "POST", path: "/up", target: "/up", host: "h", minor: 1, framing: bodyLength, length: 42, headersParsed: 2},
		{name: "equal content lengths", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n",
			method: "POST", path: "/", target: "/", host: "h", minor: 1, framing: bodyLength, length: 5, headersParsed: 3},
		{name: "zero length is no body", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
			method: "POST", path: "/", target: "/", host: "h", minor: 1, framing: bodyNone, headersParsed: 2},
		{name: "chunked", head: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n",
			method: "POST", path: "/", target: "/", host: "h", minor: 1, framing: bodyChunked, headersParsed: 2},
		{name: "http/1.0 closes", head: "GET / HTTP/1.0\r\n\r\n",
			method: "GET", path: "/", target: "/", minor: 0, close: true},
		{name: "http/1.0 keep-alive", head: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
			method: "GET", path: "/", target: "/", minor: 0, headersParsed: 1},
		{name: "connection close and tokens", head: "GET / HTTP/1.1\r\nHost: h\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\r\n",
			method: "GET", path: "/", target: "/", host: "h", minor: 1, close: true, connTokens: []string{"X-Secret"}, headersParsed: 3},
		{name: "websocket", head: "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
			method: "GET", path: "/ws", target: "/ws", host: "h", minor: 1, ws: true, headersParsed: 3},
		{name: "upgrade to something else", head: "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
			method: "GET", path: "/", target: "/", host: "h", minor: 1, headersParsed: 3},
		{name: "expect and gzip", head: "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nAccept-Encoding: br, gzip;q=0.5\r\nContent-Length: 9\r\n\r\n",
			method: "PUT", path: "/", target: "/", host: "h", minor: 1, expect: true, gzip: true, framing: bodyLength, length: 9, headersParsed: 4},
		{name: "gzip refused by q=0", head: "GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip;q=0, deflate\r\n\r\n",
			method: "GET", path: "/", target: "/", host: "h", minor: 1, headersParsed: 2},
		{name: "absolute form overrides Host", head: "GET http://Other.Example:8080/p?q HTTP/1.1\r\nHost: h\r\n\r\n",
			method: "GET", path: "/p", target: "/p?q", host: "Other.Example:8080", minor: 1, headersParsed: 1},
		{name: "options asterisk", head: "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
			method: "OPTIONS", path: "*", target: "*", host: "h", minor: 1, headersParsed: 1},
		{name: "empty value and OWS", head: "GET / HTTP/1.1\r\nHost:h  \r\nX-Empty:\r\n\r\n",
			method: "GET", path: "/", target: "/", host: "h", minor: 1, headersParsed: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r request
			if err := parseRequest([]byte(tc.head), &r); err != nil {
				t.Fatalf("parseRequest: %v", err)
			}
			got := []string{string(r.method), string(r.path), string(r.target), string(r.host)}
			want := []string{tc.method, tc.path, tc.target, tc.host}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("method/path/target/host = %q, want %q", got, want)
					break
				}
			}
			if r.minor != tc.minor || r.framing != tc.framing || r.contentLength != tc.length {
				t.Errorf("minor %d framing %d length %d, want %d %d %d", r.minor, r.framing, r.contentLength, tc.minor, tc.framing, tc.length)
			}
			if r.close != tc.close || r.upgradeWS != tc.ws || r.expect100 != tc.expect || r.acceptGzip != tc.gzip {
				t.Errorf("close %v ws %v expect %v gzip %v, want %v %v %v %v", r.close, r.upgradeWS, r.expect100, r.acceptGzip,
					tc.close, tc.ws, tc.expect, tc.gzip)
			}
			if len(r.hdrs) != tc.headersParsed {
				t.Errorf("%d header fields, want %d", len(r.hdrs), tc.headersParsed)
			}
			var toks []string
			for _, tk := range r.connTokens {
				toks = append(toks, string(tk))
			}
			if strings.Join(toks, ",") != strings.Join(tc.connTokens, ",") {
				t.Errorf("connection tokens %q, want %q", toks, tc.connTokens)
			}
		})
	}
}

func TestHTTPParseRequestInvalid(t *testing.T) {
	many := "GET / HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("X-A: b\r\n", MaxHeaders) + "\r\n"
	tests := []struct {
		name, head string
		status     int
	}{
		{"no request line", "\r\n\r\n", 400},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"no version", "GET /\r\nHost: h\r\n\r\n", 400},
		{"bad method char", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"relative target", "GET foo HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"control char in target", "GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"http/2 line", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
		{"http/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505},
		{"lowercase version", "GET / http/1.1\r\nHost: h\r\n\r\n", 400},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
		{"no colon", "GET / HTTP/1.1\r\nHost h\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n  c\r\n\r\n", 400},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\x00c\r\n\r\n", 400},
		{"negative length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400},
		{"length overflow", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"conflicting lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
		{"length and chunked", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"gzip transfer coding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"chunked twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
		{"chunked on 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
		{"odd expectation", "POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", 417},
		{"too many fields", many, 431},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r request
			err := parseRequest([]byte(tc.head), &r)
			var pe *parseError
			if !errors.As(err, &pe) {
				t.Fatalf("parseRequest = %v, want a parse error with status %d", err, tc.status)
			}
			if pe.status != tc.status {
				t.Errorf("status %d (%v), want %d", pe.status, pe, tc.status)
			}
		})
	}
}

func TestHTTPHeadLimits(t *testing.T) {
	pools := newBufPools()
	small := "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n"
	huge := "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("a", MaxHeadBytes) + "\r\n\r\n"
	var rd reader
	rd.init(strings.NewReader(small+small), pools)
	for i := range 2 {
		h, err := rd.readHead(MaxHeadBytes)
		if err != nil || len(h) != len(small) {
			t.Fatalf("head %d over the small buffer: %d bytes, %v", i, len(h), err)
		}
	}
	rd.shrink()
	if rd.large {
		t.Error("reader kept the large buffer after shrink")
	}
	rd.release()
	rd.init(strings.NewReader(huge), pools)
	if _, err := rd.readHead(MaxHeadBytes); !errors.Is(err, errHeadTooLarge) {
		t.Errorf("head over %d bytes: %v, want errHeadTooLarge", MaxHeadBytes, err)
	}
	rd.release()
	rd.init(strings.NewReader("GET / HTTP/1.1\r\nHost: h\r\n"), pools)
	if _, err := rd.readHead(MaxHeadBytes); !errors.Is(err, errHeadIncomplete) {
		t.Errorf("connection closed inside a head: %v, want errHeadIncomplete", err)
	}
	rd.release()
}

func TestHTTPParseResponse(t *testing.T) {
	tests := []struct {
		name, head string
		status     int
		framing    int
		length     int64
		close, ws  bool
		encoded    bool
		wantErr    bool
	}{
		{name: "length", head: "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: text/html\r\n\r\n", status: 200, framing: bodyLength, length: 12},
		{name: "no reason", head: "HTTP/1.1 204\r\n\r\n", status: 204, framing: bodyClose, close: true},
		{name: "chunked", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", status: 200, framing: bodyChunked},
		{name: "gzip then chunked", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", status: 200, framing: bodyChunked},
		{name: "te overrides length", head: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", status: 200, framing: bodyChunked, close: true},
		{name: "until close", head: "HTTP/1.1 200 OK\r\n\r\n", status: 200, framing: bodyClose, close: true},
		{name: "1.0 keep-alive length", head: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", status: 200, framing: bodyLength, length: 1},
		{name: "connection close", head: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", status: 200, framing: bodyLength, length: 1, close: true},
		{name: "websocket", head: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", status: 101, framing: bodyClose, close: true, ws: true},
		{name: "encoded", head: "HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\n", status: 200, framing: bodyLength, length: 1, encoded: true},
		{name: "bad status", head: "HTTP/1.1 2x0 OK\r\n\r\n", wantErr: true},
		{name: "bad version", head: "HTTP/2 200 OK\r\n\r\n", wantErr: true},
		{name: "transfer coding not chunked", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", wantErr: true},
		{name: "conflicting length", head: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", wantErr: true},
		{name: "garbage", head: "SSH-2.0-OpenSSH\r\n\r\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r response
			err := parseResponse([]byte(tc.head), &r)
			if tc.wantErr {
				if err == nil {
					t.Fatal("parsed, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.status != tc.status || r.framing != tc.framing || r.contentLength != tc.length ||
				r.close != tc.close || r.upgradeWS != tc.ws || r.contentEncoding != tc.encoded {
				t.Errorf("got status %d framing %d length %d close %v ws %v encoded %v", r.status, r.framing,
					r.contentLength, r.close, r.upgradeWS, r.contentEncoding)
			}
		})
	}
}

func TestHTTPChunkedBody(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "two chunks", in: "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\nNEXT", want: "hello, world"},
		{name: "trailers dropped", in: "3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT", want: "abc"},
		{name: "upper hex", in: "A\r\n0123456789\r\n0\r\n\r\nNEXT", want: "0123456789"},
		{name: "bad size", in: "zz\r\nabc\r\n0\r\n\r\n", wantErr: true},
		{name: "missing CRLF after data", in: "3\r\nabcX\r\n0\r\n\r\n", wantErr: true},
		{name: "truncated", in: "5\r\nhel", wantErr: true},
		{name: "huge size", in: "ffffffffffffffffff\r\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rd reader
			rd.init(strings.NewReader(tc.in), newBufPools())
			defer rd.release()
			var b body
			b.init(&rd, bodyChunked, 0)
			got, err := io.ReadAll(&b)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("decoded %q, want an error", got)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("decoded %q, %v; want %q", got, err, tc.want)
			}
			// The reader stops right after the body: the next message follows.
			rest, _ := io.ReadAll(&rd)
			if string(rest) != "NEXT" {
				t.Errorf("after the body: %q, want NEXT", rest)
			}
		})
	}
}

func TestHTTPChunkedWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	bw := bufioWriter(&buf)
	cw := chunkedWriter{bw}
	payload := strings.Repeat("0123456789abcdef", 1000)
	for _, part := range []string{payload[:1], payload[1:17], payload[17:]} {
		if _, err := cw.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if err := cw.close(); err != nil {
		t.Fatal(err)
	}
	_ = bw.Flush()
	var rd reader
	rd.init(&buf, newBufPools())
	defer rd.release()
	var b body
	b.init(&rd, bodyChunked, 0)
	got, err := io.ReadAll(&b)
	if err != nil || string(got) != payload {
		t.Fatalf("round trip: %d bytes, %v", len(got), err)
	}
}

func TestHTTPLengthBodyShort(t *testing.T) {
	var rd reader
	rd.init(strings.NewReader("abc"), newBufPools())
	defer rd.release()
	var b body
	b.init(&rd, bodyLength, 10)
	got, err := io.ReadAll(&b)
	if !errors.Is(err, io.ErrUnexpectedEOF) || string(got) != "abc" {
		t.Errorf("short body: %q, %v; want abc and ErrUnexpectedEOF", got, err)
	}
}
