package l7

import (
	"bytes"
	"io"
	"testing"
)

// FuzzParseRequest feeds arbitrary bytes through the head reader and the
// request parser: nothing may panic, and a request the proxy accepts must
// come out as a head the proxy itself accepts again, with the same method,
// target and body framing (so the backend frames the body as we did).
func FuzzParseRequest(f *testing.F) {
	seeds := []string{
		"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n",
		"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
		"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"GET http://a.example.com:8080/p?q=1 HTTP/1.1\r\nHost: b\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, X-A\r\nUpgrade: websocket\r\nX-A: 1\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"\r\n\nGET / HTTP/1.1\nHost: h\n\n",
		"GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1; XLBSERVERID=abc; b=2\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip;q=0\r\nExpect: 100-continue\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	pools := newBufPools()
	st := testState(Headers{XForwardedFor: true, XForwardedProto: true, LBIP: true, LBID: true},
		Persistence{Mode: InsertCookie})
	f.Fuzz(func(t *testing.T, data []byte) {
		var rd reader
		rd.init(bytes.NewReader(data), pools)
		defer rd.release()
		head, err := rd.readHead(MaxHeadBytes)
		if err != nil {
			return
		}
		var req request
		if err := parseRequest(head, &req); err != nil {
			if _, ok := err.(*parseError); !ok {
				t.Fatalf("parse error of type %T", err)
			}
			return
		}
		// Decoding the body must not panic either.
		var b body
		b.init(&rd, req.framing, req.contentLength)
		_, _ = io.Copy(io.Discard, &b)

		out := appendRequestHead(nil, st, &req, []byte("192.0.2.1"))
		var again request
		if err := parseRequest(out, &again); err != nil {
			t.Fatalf("accepted %q but rewrote it as %q, which is refused: %v", head, out, err)
		}
		if !bytes.Equal(again.method, req.method) || !bytes.Equal(again.target, req.target) ||
			again.framing != req.framing || again.contentLength != req.contentLength {
			t.Fatalf("rewrite changed the request: %q -> %q", head, out)
		}
		if again.upgradeWS != req.upgradeWS {
			t.Fatalf("rewrite changed the upgrade: %q -> %q", head, out)
		}
	})
}
