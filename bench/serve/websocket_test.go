package serve

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// wsClient is a minimal RFC 6455 client: just enough to drive the echo endpoint.
type wsClient struct {
	conn net.Conn
	r    *bufio.Reader
}

const testWSKey = "dGhlIHNhbXBsZSBub25jZQ==" // the RFC 6455 example key

func dialWS(t *testing.T, addr string) (*wsClient, *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", addr, testWSKey)
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &wsClient{conn, r}, resp
}

// send writes one masked frame.
func (c *wsClient) send(fin bool, op byte, p []byte, masked bool) error {
	var b bytes.Buffer
	h0 := op
	if fin {
		h0 |= 0x80
	}
	b.WriteByte(h0)
	m := byte(0)
	if masked {
		m = 0x80
	}
	switch {
	case len(p) <= 125:
		b.WriteByte(m | byte(len(p)))
	case len(p) <= 0xffff:
		b.WriteByte(m | 126)
		b.Write(binary.BigEndian.AppendUint16(nil, uint16(len(p))))
	default:
		b.WriteByte(m | 127)
		b.Write(binary.BigEndian.AppendUint64(nil, uint64(len(p))))
	}
	if masked {
		key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
		b.Write(key[:])
		for i, x := range p {
			b.WriteByte(x ^ key[i&3])
		}
	} else {
		b.Write(p)
	}
	_, err := c.conn.Write(b.Bytes())
	return err
}

// recv reads one server frame, which must not be masked.
func (c *wsClient) recv() (fin bool, op byte, p []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(c.r, h[:]); err != nil {
		return
	}
	if h[1]&0x80 != 0 {
		return false, 0, nil, fmt.Errorf("server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err = io.ReadFull(c.r, e[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err = io.ReadFull(c.r, e[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	p = make([]byte, n)
	_, err = io.ReadFull(c.r, p)
	return h[0]&0x80 != 0, h[0] & 0x0f, p, err
}

func TestWebSocketHandshake(t *testing.T) {
	s := NewHTTP("ws-1")
	r := startHTTP(t, s)
	c, resp := dialWS(t, r.addr)
	defer c.conn.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	// The accept value of the RFC 6455 example (section 1.3).
	for k, want := range map[string]string{
		"Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
		"Upgrade":              "websocket",
		"Connection":           "Upgrade",
		"X-Backend":            "ws-1",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestWebSocketEcho(t *testing.T) {
	s := NewHTTP("ws-2")
	r := startHTTP(t, s)
	big := bytes.Repeat([]byte("0123456789abcdef"), 70000/16) // needs the 64-bit length
	mid := bytes.Repeat([]byte{0xff, 0x00, 0x7f}, 100)        // needs the 16-bit length
	type frame struct {
		fin bool
		op  byte
		p   []byte
	}
	tests := []struct {
		name string
		send []frame
		want []frame
	}{
		{"text", []frame{{true, wsText, []byte("hello, xlb")}}, []frame{{true, wsText, []byte("hello, xlb")}}},
		{"binary", []frame{{true, wsBinary, []byte{0, 1, 2, 0xfe, 0xff}}}, []frame{{true, wsBinary, []byte{0, 1, 2, 0xfe, 0xff}}}},
		{"binary 300 bytes", []frame{{true, wsBinary, mid}}, []frame{{true, wsBinary, mid}}},
		{"text 70000 bytes", []frame{{true, wsText, big}}, []frame{{true, wsText, big}}},
		{"empty text", []frame{{true, wsText, nil}}, []frame{{true, wsText, []byte{}}}},
		{"fragmented", []frame{{false, wsText, []byte("hel")}, {true, wsContinuation, []byte("lo")}},
			[]frame{{false, wsText, []byte("hel")}, {true, wsContinuation, []byte("lo")}}},
		{"ping", []frame{{true, wsPing, []byte("p")}}, []frame{{true, wsPong, []byte("p")}}},
		{"pong ignored", []frame{{true, wsPong, []byte("x")}, {true, wsText, []byte("after")}},
			[]frame{{true, wsText, []byte("after")}}},
	}
	c, resp := dialWS(t, r.addr)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	// All cases share one connection, as a real client would.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range tc.send {
				if err := c.send(f.fin, f.op, f.p, true); err != nil {
					t.Fatal(err)
				}
			}
			for _, w := range tc.want {
				fin, op, p, err := c.recv()
				if err != nil {
					t.Fatal(err)
				}
				if fin != w.fin || op != w.op || !bytes.Equal(p, w.p) {
					t.Fatalf("got fin=%v op=%#x %d bytes, want fin=%v op=%#x %d bytes", fin, op, len(p), w.fin, w.op, len(w.p))
				}
			}
		})
	}

	t.Run("close", func(t *testing.T) {
		payload := append(binary.BigEndian.AppendUint16(nil, 1000), "bye"...)
		if err := c.send(true, wsClose, payload, true); err != nil {
			t.Fatal(err)
		}
		fin, op, p, err := c.recv()
		if err != nil || !fin || op != wsClose || len(p) != 2 || binary.BigEndian.Uint16(p) != 1000 {
			t.Fatalf("got fin=%v op=%#x payload %v err %v, want a close frame with status 1000", fin, op, p, err)
		}
		if n, err := c.r.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("after close: read %d bytes, err %v, want EOF", n, err)
		}
	})
}

func TestWebSocketProtocolErrors(t *testing.T) {
	s := NewHTTP("ws-3")
	r := startHTTP(t, s)
	tests := []struct {
		name       string
		fin        bool
		op         byte
		p          []byte
		masked     bool
		wantStatus uint16
	}{
		{"unmasked", true, wsText, []byte("x"), false, wsStatusProtocolError},
		{"unknown opcode", true, 0x3, []byte("x"), true, wsStatusProtocolError},
		{"fragmented ping", false, wsPing, nil, true, wsStatusProtocolError},
		{"continuation first", true, wsContinuation, []byte("x"), true, wsStatusProtocolError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, resp := dialWS(t, r.addr)
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if err := c.send(tc.fin, tc.op, tc.p, tc.masked); err != nil {
				t.Fatal(err)
			}
			_, op, p, err := c.recv()
			if err != nil || op != wsClose || len(p) < 2 || binary.BigEndian.Uint16(p) != tc.wantStatus {
				t.Fatalf("got op=%#x payload %q err %v, want close %d", op, p, err, tc.wantStatus)
			}
			if _, err := c.r.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("connection not closed after protocol error: %v", err)
			}
		})
	}
}

func TestWebSocketHandshakeRejected(t *testing.T) {
	s := NewHTTP("ws-4")
	r := startHTTP(t, s)
	c := newClient(t)
	tests := []struct {
		name       string
		method     string
		header     http.Header
		wantStatus int
	}{
		{"plain get", http.MethodGet, nil, http.StatusUpgradeRequired},
		{"post", http.MethodPost, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {testWSKey}}, http.StatusUpgradeRequired},
		{"old version", http.MethodGet, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Version": {"8"}, "Sec-Websocket-Key": {testWSKey}}, http.StatusUpgradeRequired},
		{"bad key", http.MethodGet, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"short"}}, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, c, tc.method, "http://"+r.addr+"/ws", tc.header)
			if res.status != tc.wantStatus {
				t.Errorf("status %d (%s), want %d", res.status, strings.TrimSpace(res.body), tc.wantStatus)
			}
		})
	}
	// A ResponseWriter that cannot be hijacked (HTTP/2, a recorder) gets a refusal.
	req := httptest.NewRequest(http.MethodGet, "/ws", nil)
	req.Header = http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
		"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {testWSKey}}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("upgrade without a hijackable connection answered %d, want 400", rec.Code)
	}
}
