package l7

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// patternReader yields n pseudo-random bytes without holding them.
type patternReader struct {
	rng *rand.ChaCha8
	n   int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	_, _ = p.rng.Read(b)
	p.n -= int64(len(b))
	return len(b), nil
}

func patternSum(n int64) [32]byte {
	h := sha256.New()
	_, _ = io.Copy(h, &patternReader{rng: rand.NewChaCha8([32]byte{1}), n: n})
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func TestHTTPLargeBodiesStream(t *testing.T) {
	b := startBackend(t, "be1")
	e := newEngine(t, Options{})
	l := testListener(t, server(b, 100))
	e.apply(Config{Listeners: []Listener{l}})
	const size = 20 << 20
	want := patternSum(size)
	c := client(true)
	for _, chunked := range []bool{true, false} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, "http://"+l.Addr.String()+"/echo",
				&patternReader{rng: rand.NewChaCha8([32]byte{1}), n: size})
			if chunked {
				req.ContentLength = -1
			} else {
				req.ContentLength = size
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			if err != nil || n != size {
				t.Fatalf("echoed %d bytes, %v", n, err)
			}
			if !bytes.Equal(h.Sum(nil), want[:]) {
				t.Error("echoed body differs")
			}
			if chunked && len(resp.TransferEncoding) == 0 {
				t.Error("chunked echo came back without chunked framing")
			}
		})
	}
	// The same connection serves the next request.
	if code, body, _ := get(t, c, "http://"+l.Addr.String()+"/"); code != 200 || body != "be1\n" {
		t.Errorf("after the uploads: %d %q", code, body)
	}
}

func TestHTTPExpect100Continue(t *testing.T) {
	b := startBackend(t, "be1")
	e := newEngine(t, Options{})
	l := testListener(t, server(b, 100))
	e.apply(Config{Listeners: []Listener{l}})
	conn := dialTest(t, l.Addr.String())
	body := strings.Repeat("z", 5000)
	fmt.Fprintf(conn, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(body))
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("before sending the body: %q, %v; want 100 Continue", line, err)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("100 Continue not followed by a blank line: %q", blank)
	}
	if _, err := io.WriteString(conn, body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(got) != body {
		t.Errorf("final answer %d with %d bytes", resp.StatusCode, len(got))
	}
}

func TestHTTPWebSocketEcho(t *testing.T) {
	b := startBackend(t, "be1")
	e := newEngine(t, Options{})
	l := testListener(t, server(b, 100))
	e.apply(Config{Listeners: []Listener{l}})
	ws := dialWebSocket(t, l.Addr.String())
	for _, msg := range []string{"hello", strings.Repeat("m", 70000)} {
		if err := ws.send(0x1, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		op, p, err := ws.recv()
		if err != nil || op != 0x1 || string(p) != msg {
			t.Fatalf("echo of %d bytes: op %d, %d bytes, %v", len(msg), op, len(p), err)
		}
	}
	if got := e.counter("xlb_http_requests_total", "code_class", "1xx"); got != 1 {
		t.Errorf("1xx (upgrade) requests = %v, want 1", got)
	}
	if e.ActiveConnections() != 1 {
		t.Errorf("active connections during the session = %d", e.ActiveConnections())
	}
	_ = ws.conn.Close()
	waitFor(t, 5*time.Second, "the websocket connection to end", func() bool { return e.ActiveConnections() == 0 })
}

// wsConn is a minimal RFC 6455 client.
type wsConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialWebSocket(t *testing.T, addr string) *wsConn {
	t.Helper()
	conn := dialTest(t, addr)
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", addr, key)
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != serve.WebSocketAccept(key) ||
		!strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	return &wsConn{conn: conn, r: r}
}

func (c *wsConn) send(op byte, p []byte) error {
	var b bytes.Buffer
	b.WriteByte(0x80 | op)
	switch {
	case len(p) <= 125:
		b.WriteByte(0x80 | byte(len(p)))
	case len(p) <= 0xffff:
		b.WriteByte(0x80 | 126)
		b.Write(binary.BigEndian.AppendUint16(nil, uint16(len(p))))
	default:
		b.WriteByte(0x80 | 127)
		b.Write(binary.BigEndian.AppendUint64(nil, uint64(len(p))))
	}
	key := [4]byte{1, 2, 3, 4}
	b.Write(key[:])
	for i, x := range p {
		b.WriteByte(x ^ key[i&3])
	}
	_, err := c.conn.Write(b.Bytes())
	return err
}

func (c *wsConn) recv() (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var x [2]byte
		if _, err := io.ReadFull(c.r, x[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		if _, err := io.ReadFull(c.r, x[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(x[:])
	}
	p := make([]byte, n)
	_, err := io.ReadFull(c.r, p)
	return h[0] & 0x0f, p, err
}

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &p, DisableCompression: true}}
}

func TestHTTPH2CPriorKnowledge(t *testing.T) {
	b1, b2 := startBackend(t, "be1"), startBackend(t, "be2")
	e := newEngine(t, Options{})
	l := testListener(t, server(b1, 100))
	l.Groups = map[string]pool.Config{"web": {Servers: []pool.Server{server(b2, 100)}}}
	l.Rules = []Rule{{Domain: "*.example.com", Group: "web"}}
	l.Persistence = Persistence{Mode: InsertCookie}
	l.Headers = Headers{XForwardedFor: true, LBID: true}
	l.Gzip = true
	e.apply(Config{Listeners: []Listener{l}})
	c := h2cClient()
	url := "http://" + l.Addr.String()

	req, _ := http.NewRequest(http.MethodGet, url+"/", nil)
	req.Host = "a.example.com"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(body) != "be2\n" {
		t.Fatalf("h2c GET: %s %q", resp.Proto, body)
	}
	sc := resp.Header.Get("Set-Cookie")
	if !strings.HasPrefix(sc, "XLBSERVERID=") {
		t.Errorf("h2c response Set-Cookie %q", sc)
	}

	req, _ = http.NewRequest(http.MethodGet, url+"/headers", nil)
	req.Host = "a.example.com"
	req.Header.Set("Cookie", strings.SplitN(sc, ";", 2)[0])
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`"X-Forwarded-For":["127.0.0.1"]`, `"X-Lb-Id":["lb"]`, `"_proto":["HTTP/1.1"]`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("backend saw %s, missing %s", body, want)
		}
	}
	if resp.Header.Get("Set-Cookie") != "" {
		t.Error("a valid cookie got a new Set-Cookie over h2")
	}

	const size = 3 << 20
	req, _ = http.NewRequest(http.MethodPost, url+"/echo", &patternReader{rng: rand.NewChaCha8([32]byte{1}), n: size})
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, _ := io.Copy(h, resp.Body)
	resp.Body.Close()
	if want := patternSum(size); n != size || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Errorf("h2c echo: %d bytes, digest match %v", n, bytes.Equal(h.Sum(nil), want[:]))
	}

	req, _ = http.NewRequest(http.MethodGet, url+"/bytes?n=4000&type=text/css", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("h2c gzip: %v %v", resp.Header, err)
	}
	data, _ := io.ReadAll(zr)
	resp.Body.Close()
	if len(data) != 4000 {
		t.Errorf("h2c gzip body %d bytes", len(data))
	}
	if got := e.counter("xlb_http_requests_total", "code_class", "2xx"); got != 4 {
		t.Errorf("2xx requests = %v, want 4", got)
	}
}

func TestHTTPPipeliningAndHTTP10(t *testing.T) {
	b := startBackend(t, "be1")
	e := newEngine(t, Options{})
	l := testListener(t, server(b, 100))
	e.apply(Config{Listeners: []Listener{l}})
	// Three pipelined requests, the last asking to close.
	out := rawExchange(t, l.Addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /status/404 HTTP/1.1\r\nHost: a\r\n\r\n"+
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 5*time.Second)
	if strings.Count(out, "HTTP/1.1 200 OK") != 2 || strings.Count(out, "HTTP/1.1 404") != 1 || !strings.Contains(out, "Connection: close") {
		t.Errorf("pipelined answers:\n%s", out)
	}
	// HTTP/1.0 without keep-alive: answered and closed.
	out = rawExchange(t, l.Addr, "GET / HTTP/1.0\r\n\r\n", 5*time.Second)
	if !strings.HasPrefix(out, "HTTP/1.1 200") || !strings.Contains(out, "Connection: close") || !strings.HasSuffix(out, "be1\n") {
		t.Errorf("HTTP/1.0 answer:\n%s", out)
	}
	// HTTP/1.0 with keep-alive: kept, then closed by a plain 1.0 request.
	out = rawExchange(t, l.Addr, "POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc"+
		"GET / HTTP/1.0\r\n\r\n", 5*time.Second)
	if !strings.Contains(out, "Connection: keep-alive") || !strings.Contains(out, "abcHTTP/1.1 200") || !strings.HasSuffix(out, "be1\n") {
		t.Errorf("HTTP/1.0 keep-alive answer:\n%s", out)
	}
	// A chunked request whose echo comes back chunked, then HEAD with a length.
	payload := strings.Repeat("0123456789", 500)
	var chunks strings.Builder
	for p := payload; len(p) > 0; {
		n := min(len(p), 1000)
		fmt.Fprintf(&chunks, "%x\r\n%s\r\n", n, p[:n])
		p = p[n:]
	}
	conn, err := net.Dial("tcp", l.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n%s0\r\n\r\n"+
		"HEAD /bytes?n=100 HTTP/1.1\r\nHost: a\r\n\r\n", chunks.String())
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != payload || len(resp.TransferEncoding) == 0 {
		t.Errorf("chunked echo: %d bytes, %v, transfer encoding %v", len(got), err, resp.TransferEncoding)
	}
	resp, err = http.ReadResponse(br, &http.Request{Method: http.MethodHead})
	if err != nil || resp.StatusCode != 200 || resp.ContentLength != 100 {
		t.Errorf("HEAD after the echo: %v %v", resp, err)
	}
}

func TestHTTPStreamedResponseStreams(t *testing.T) {
	release := make(chan struct{})
	addr := startRawServer(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"d\r\ndata: first\n\n\r\n")
		<-release
		_, _ = io.WriteString(c, "e\r\ndata: second\n\n\r\n0\r\n\r\n")
	})
	e := newEngine(t, Options{})
	l := testListener(t, rawServer(addr, 100))
	l.Gzip = true
	e.apply(Config{Listeners: []Listener{l}})
	for _, tc := range []struct {
		name   string
		c      *http.Client
		accept string
	}{{"http1", client(false), ""}, {"http1-gzip", client(false), "gzip"}, {"h2c", h2cClient(), ""}} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+l.Addr.String()+"/", nil)
			if tc.accept != "" {
				req.Header.Set("Accept-Encoding", tc.accept)
			}
			resp, err := tc.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			first := make([]byte, len("data: first\n\n"))
			got := make(chan error, 1)
			go func() { _, err := io.ReadFull(resp.Body, first); got <- err }()
			select {
			case err := <-got:
				if err != nil || string(first) != "data: first\n\n" {
					t.Errorf("first event %q, %v", first, err)
				}
			case <-time.After(3 * time.Second):
				t.Error("the first event did not arrive while the backend held the second")
			}
			release <- struct{}{}
			rest, _ := io.ReadAll(resp.Body)
			if string(rest) != "data: second\n\n" {
				t.Errorf("rest %q", rest)
			}
		})
	}
}
