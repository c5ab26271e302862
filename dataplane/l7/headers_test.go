package l7

import (
	"net/netip"
	"strings"
	"testing"
)

func testState(h Headers, p Persistence) *listenerState {
	l := Listener{Name: "lb/http/80", LB: "lb-web", Addr: netip.MustParseAddrPort("203.0.113.10:80"), Headers: h, Persistence: p}
	st := &listenerState{cfg: l, scheme: "http"}
	tokens := newServerTokens([]byte("k"))
	st.persist = newPersistence(p, l.cookieName(), []string{"10.0.0.1:80"}, tokens)
	st.xfProto = []byte("X-Forwarded-Proto: http\r\n")
	st.lbIP = []byte("X-LB-IP: 203.0.113.10\r\n")
	st.lbID = []byte("X-LB-ID: lb-web\r\n")
	return st
}

func TestHTTPRequestHeadRewrite(t *testing.T) {
	all := Headers{XForwardedFor: true, XForwardedProto: true, LBIP: true, LBID: true}
	tests := []struct {
		name    string
		h       Headers
		in      string
		want    []string // lines that must be present
		notWant []string // substrings that must be absent
	}{
		{
			name: "all headers, XFF appended to the client's list",
			h:    all,
			in:   "GET /p?q=1 HTTP/1.1\r\nHost: www.example.com\r\nX-Forwarded-For: 198.51.100.7, 10.1.1.1\r\nX-Forwarded-Proto: https\r\nX-LB-IP: 1.2.3.4\r\nX-LB-ID: fake\r\nAccept: */*\r\n\r\n",
			want: []string{"GET /p?q=1 HTTP/1.1", "Host: www.example.com", "Accept: */*",
				"X-Forwarded-For: 198.51.100.7, 10.1.1.1, 192.0.2.1", "X-Forwarded-Proto: http",
				"X-LB-IP: 203.0.113.10", "X-LB-ID: lb-web"},
			notWant: []string{"https", "1.2.3.4", "fake"},
		},
		{
			name: "two XFF fields are one list",
			h:    Headers{XForwardedFor: true},
			in:   "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n",
			want: []string{"X-Forwarded-For: 1.1.1.1, 2.2.2.2, 192.0.2.1"},
		},
		{
			name: "headers off: the client's values pass through, nothing added",
			h:    Headers{},
			in:   "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nX-LB-ID: x\r\n\r\n",
			want: []string{"X-Forwarded-For: 1.1.1.1", "X-LB-ID: x"}, notWant: []string{"192.0.2.1", "X-LB-IP", "X-Forwarded-Proto"},
		},
		{
			name: "hop-by-hop fields and the fields Connection names are removed",
			h:    Headers{},
			in: "POST / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n" +
				"Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nTransfer-Encoding: chunked\r\nX-End: 1\r\n\r\n",
			want:    []string{"Transfer-Encoding: chunked", "X-End: 1"},
			notWant: []string{"Connection", "X-Hop", "Keep-Alive", "TE:", "Trailer", "Upgrade", "secret"},
		},
		{
			name: "content length normalized",
			h:    Headers{},
			in:   "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n",
			want: []string{"Content-Length: 5"}, notWant: []string{"5, 5"},
		},
		{
			name: "websocket upgrade kept",
			h:    Headers{},
			in:   "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n",
			want: []string{"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Key: k"},
		},
		{
			name: "http/1.0 request goes out as 1.1 with the listener as Host",
			h:    Headers{},
			in:   "GET / HTTP/1.0\r\n\r\n",
			want: []string{"GET / HTTP/1.1", "Host: 203.0.113.10:80"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := testState(tc.h, Persistence{})
			var req request
			if err := parseRequest([]byte(tc.in), &req); err != nil {
				t.Fatal(err)
			}
			out := string(appendRequestHead(nil, st, &req, []byte("192.0.2.1")))
			if !strings.HasSuffix(out, "\r\n\r\n") {
				t.Fatalf("head does not end with a blank line: %q", out)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\r\n\r\n"), "\r\n")
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					found = found || l == w
				}
				if !found {
					t.Errorf("missing line %q in\n%s", w, out)
				}
			}
			for _, nw := range tc.notWant {
				if strings.Contains(out, nw) {
					t.Errorf("found %q in\n%s", nw, out)
				}
			}
			// What the proxy sends must parse as a valid request.
			var again request
			if err := parseRequest([]byte(out), &again); err != nil {
				t.Errorf("the rewritten head does not parse: %v", err)
			}
		})
	}
}
