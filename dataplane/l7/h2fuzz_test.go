package l7

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Seed is an HPACK header block of the given fields, without indexing.
func h2Seed(fields ...string) []byte {
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return b.Bytes()
}

// FuzzH2HeaderBlock feeds arbitrary bytes as a request's header block
// through the HPACK decoding and the request checks: nothing may panic,
// and a request the proxy accepts must come out as an HTTP/1.1 head the
// proxy itself accepts again, with the same method and target.
func FuzzH2HeaderBlock(f *testing.F) {
	f.Add(h2Seed(":method", "GET", ":scheme", "https", ":authority", "www.example.com", ":path", "/"), true)
	f.Add(h2Seed(":method", "POST", ":scheme", "http", ":path", "/up?x=1", "content-length", "5", "cookie", "a=1", "cookie", "XLBSERVERID=x"), false)
	f.Add(h2Seed(":method", "GET", ":path", "/", ":scheme", "http", "connection", "close"), true)
	f.Add(h2Seed(":method", "GET", ":path", "", ":scheme", "http"), true)
	f.Add(h2Seed(":status", "200"), true)
	f.Add(h2Seed("x-a", "1", ":method", "GET"), true)
	f.Add([]byte{0x3f, 0xe1, 0x1f, 0x82}, true) // a table size update over the limit
	st := testState(Headers{XForwardedFor: true, XForwardedProto: true, LBIP: true, LBID: true},
		Persistence{Mode: InsertCookie})
	f.Fuzz(func(t *testing.T, block []byte, end bool) {
		b := newH2Block()
		b.start(&http2.HeadersFrame{FrameHeader: http2.FrameHeader{StreamID: 1}})
		b.end = end
		if b.write(block, false) != nil || b.finish() != nil || b.invalid != nil {
			return
		}
		s := &h2Stream{declLen: -1}
		tooLarge, err := s.fromFields(b)
		if err != nil || tooLarge {
			return
		}
		if !s.x.valid() {
			return // answered 400
		}
		out := appendRequestHead(nil, st, &s.x.req, []byte("192.0.2.1"))
		var again request
		if err := parseRequest(out, &again); err != nil {
			t.Fatalf("accepted %q but rewrote it as %q, which is refused: %v", block, out, err)
		}
		if !bytes.Equal(again.method, s.x.req.method) || !bytes.Equal(again.target, s.x.req.target) {
			t.Fatalf("rewrite changed the request: %q -> %q", block, out)
		}
	})
}

// FuzzH2Frames sends arbitrary bytes as frames after the preface to a
// running listener: the proxy must neither panic nor stop serving.
func FuzzH2Frames(f *testing.F) {
	var seed bytes.Buffer
	fr := http2.NewFramer(&seed, nil)
	_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true,
		BlockFragment: h2Seed(":method", "POST", ":scheme", "http", ":authority", "a", ":path", "/echo", "content-length", "3")})
	_ = fr.WriteData(1, false, []byte("ab"))
	_ = fr.WriteWindowUpdate(1, 100)
	_ = fr.WriteData(1, true, []byte("c"))
	_ = fr.WriteRSTStream(1, http2.ErrCodeCancel)
	_ = fr.WritePing(false, [8]byte{1})
	_ = fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	f.Add(seed.Bytes())
	f.Add([]byte{0, 0, 5, 1, 4, 0, 0, 0, 3, 0x82, 0x86, 0x84, 0x41, 0})

	f.Fuzz(func(t *testing.T, frames []byte) {
		h2FuzzOnce(t, frames)
	})
}

// h2FuzzOnce runs one input on a fresh engine: sending it, reading what
// comes back until the proxy closes or goes quiet, then checking that a
// well-formed request is still answered.
func h2FuzzOnce(t *testing.T, frames []byte) {
	_, addr := h2Proxy(t, func(l *Listener) { l.Timeouts.Idle = time.Second })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Write(append([]byte(http2.ClientPreface), frames...)); err == nil {
		_, _ = io.Copy(io.Discard, c)
	}
	resp, err := h2cClient().Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("after the input the listener does not answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "be\n" {
		t.Fatalf("after the input: %d %q", resp.StatusCode, body)
	}
}
