package serve

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"testing"
	"time"
)

// newClient returns an HTTP/1.1 client whose connections are closed with the test.
func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// newH2CClient returns a client that speaks HTTP/2 with prior knowledge over plain TCP.
func newH2CClient(t *testing.T) *http.Client {
	t.Helper()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

type httpResult struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, c *http.Client, method, url string, hdr http.Header) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return httpResult{resp.StatusCode, resp.Header, string(b)}
}

func TestHTTPEndpoints(t *testing.T) {
	s := NewHTTP("web-1")
	r := startHTTP(t, s)
	base := "http://" + r.addr
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantBody   string // exact unless check is set
		wantHeader map[string]string
		check      func(t *testing.T, res httpResult)
	}{
		{name: "root", path: "/", wantStatus: 200, wantBody: "web-1\n",
			wantHeader: map[string]string{"X-Backend": "web-1", "Content-Type": "text/plain; charset=utf-8", "Content-Length": "6"}},
		{name: "any path", path: "/some/app/path?q=1", wantStatus: 200, wantBody: "web-1\n",
			wantHeader: map[string]string{"X-Backend": "web-1"}},
		{name: "head", method: http.MethodHead, path: "/", wantStatus: 200, wantBody: "",
			wantHeader: map[string]string{"X-Backend": "web-1", "Content-Length": "6"}},
		{name: "post root", method: http.MethodPost, path: "/", wantStatus: 200, wantBody: "web-1\n"},
		{name: "health", path: "/health", wantStatus: 200, wantBody: "ok",
			wantHeader: map[string]string{"X-Backend": "web-1"}},
		{name: "status 404", path: "/status/404", wantStatus: 404, wantBody: "web-1\n",
			wantHeader: map[string]string{"X-Backend": "web-1"}},
		{name: "status 503", path: "/status/503", wantStatus: 503, wantBody: "web-1\n"},
		{name: "status 302", path: "/status/302", wantStatus: 302, wantBody: "web-1\n"},
		{name: "status 204 has no body", path: "/status/204", wantStatus: 204, wantBody: ""},
		{name: "status not a number", path: "/status/abc", wantStatus: 400,
			check: func(t *testing.T, res httpResult) {}},
		{name: "status out of range", path: "/status/99", wantStatus: 400,
			check: func(t *testing.T, res httpResult) {}},
		{name: "status prefix only is root", path: "/status/", wantStatus: 200, wantBody: "web-1\n"},
		{name: "bytes default type", path: "/bytes?n=100000", wantStatus: 200,
			wantHeader: map[string]string{"Content-Type": "text/plain; charset=utf-8", "Content-Length": "100000", "X-Backend": "web-1"},
			check: func(t *testing.T, res httpResult) {
				if len(res.body) != 100000 {
					t.Errorf("body length = %d, want 100000", len(res.body))
				}
				if !strings.HasPrefix(res.body, "xlb bench payload") {
					t.Errorf("body starts %q, want text", res.body[:20])
				}
			}},
		{name: "bytes with type", path: "/bytes?n=10&type=application/json", wantStatus: 200,
			wantHeader: map[string]string{"Content-Type": "application/json", "Content-Length": "10"},
			check: func(t *testing.T, res httpResult) {
				if len(res.body) != 10 {
					t.Errorf("body length = %d, want 10", len(res.body))
				}
			}},
		{name: "bytes zero", path: "/bytes?n=0", wantStatus: 200, wantBody: ""},
		{name: "bytes head", method: http.MethodHead, path: "/bytes?n=5000", wantStatus: 200, wantBody: "",
			wantHeader: map[string]string{"Content-Length": "5000"}},
		{name: "bytes capped", method: http.MethodHead, path: "/bytes?n=999999999999", wantStatus: 200,
			wantHeader: map[string]string{"Content-Length": strconv.Itoa(MaxBytes)}},
		{name: "bytes negative", path: "/bytes?n=-1", wantStatus: 400, check: func(t *testing.T, res httpResult) {}},
		{name: "bytes missing n", path: "/bytes", wantStatus: 400, check: func(t *testing.T, res httpResult) {}},
		{name: "cookie", path: "/cookie?name=sid&value=abc&max_age=60", wantStatus: 200, wantBody: "web-1\n",
			wantHeader: map[string]string{"Set-Cookie": "sid=abc; Path=/; Max-Age=60"}},
		{name: "cookie without max age", path: "/cookie?name=sid&value=abc", wantStatus: 200, wantBody: "web-1\n",
			wantHeader: map[string]string{"Set-Cookie": "sid=abc; Path=/"}},
		{name: "cookie without name", path: "/cookie?value=abc", wantStatus: 400, check: func(t *testing.T, res httpResult) {}},
		{name: "cookie bad max age", path: "/cookie?name=a&value=b&max_age=x", wantStatus: 400, check: func(t *testing.T, res httpResult) {}},
		{name: "delay", path: "/delay?ms=0", wantStatus: 200, wantBody: "web-1\n"},
		{name: "delay bad ms", path: "/delay?ms=soon", wantStatus: 400, check: func(t *testing.T, res httpResult) {}},
		{name: "echo without body", method: http.MethodPost, path: "/echo", wantStatus: 200, wantBody: ""},
		{name: "ws without upgrade", path: "/ws", wantStatus: http.StatusUpgradeRequired, check: func(t *testing.T, res httpResult) {}},
	}
	for _, h2c := range []bool{false, true} {
		c := newClient(t)
		if h2c {
			c = newH2CClient(t)
		}
		for _, tc := range tests {
			t.Run(tc.name+map[bool]string{false: "/http1", true: "/h2c"}[h2c], func(t *testing.T) {
				method := tc.method
				if method == "" {
					method = http.MethodGet
				}
				res := do(t, c, method, base+tc.path, nil)
				if res.status != tc.wantStatus {
					t.Errorf("status = %d, want %d (body %q)", res.status, tc.wantStatus, res.body)
				}
				if tc.check != nil {
					tc.check(t, res)
				} else if res.body != tc.wantBody {
					t.Errorf("body = %q, want %q", res.body, tc.wantBody)
				}
				for k, v := range tc.wantHeader {
					if got := res.header.Get(k); got != v {
						t.Errorf("header %s = %q, want %q", k, got, v)
					}
				}
			})
		}
	}
}

func TestHTTPHealthToggle(t *testing.T) {
	s := NewHTTP("web-1")
	r := startHTTP(t, s)
	c := newClient(t)
	for _, step := range []struct {
		healthy    bool
		wantStatus int
		wantBody   string
	}{
		{true, 200, "ok"},
		{false, 503, "unhealthy"},
		{false, 503, "unhealthy"},
		{true, 200, "ok"},
	} {
		s.SetHealthy(step.healthy)
		res := do(t, c, http.MethodGet, "http://"+r.addr+"/health", nil)
		if res.status != step.wantStatus || res.body != step.wantBody {
			t.Errorf("healthy=%v: got %d %q, want %d %q", step.healthy, res.status, res.body, step.wantStatus, step.wantBody)
		}
		// The rest of the server keeps answering.
		if res := do(t, c, http.MethodGet, "http://"+r.addr+"/", nil); res.status != 200 {
			t.Errorf("healthy=%v: / answered %d", step.healthy, res.status)
		}
	}
}

func TestHTTPHeaders(t *testing.T) {
	s := NewHTTP("web-2")
	r := startHTTP(t, s)
	tests := []struct {
		name      string
		client    *http.Client
		wantProto string
		wantUA    string
	}{
		{"http1", newClient(t), "HTTP/1.1", "Go-http-client/1.1"},
		{"h2c", newH2CClient(t), "HTTP/2.0", "Go-http-client/2.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{
				"X-Forwarded-For": {"192.0.2.7"},
				"X-Multi":         {"a", "b"},
			}
			res := do(t, tc.client, http.MethodGet, "http://"+r.addr+"/headers?x=1", hdr)
			if res.status != 200 || res.header.Get("X-Backend") != "web-2" {
				t.Fatalf("got %d X-Backend %q", res.status, res.header.Get("X-Backend"))
			}
			if ct := res.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var m map[string][]string
			if err := json.Unmarshal([]byte(res.body), &m); err != nil {
				t.Fatalf("body %q: %v", res.body, err)
			}
			want := map[string][]string{
				"X-Forwarded-For": {"192.0.2.7"},
				"X-Multi":         {"a", "b"},
				HeadersKeyHost:    {r.addr},
				HeadersKeyProto:   {tc.wantProto},
				HeadersKeyURI:     {"/headers?x=1"},
				"Accept-Encoding": {"gzip"},
				"User-Agent":      {tc.wantUA},
			}
			for k, v := range want {
				if strings.Join(m[k], "|") != strings.Join(v, "|") {
					t.Errorf("%s = %q, want %q", k, m[k], v)
				}
			}
			ra := m[HeadersKeyRemoteAddr]
			if len(ra) != 1 {
				t.Fatalf("%s = %q", HeadersKeyRemoteAddr, ra)
			}
			if host, _, err := net.SplitHostPort(ra[0]); err != nil || host != "127.0.0.1" {
				t.Errorf("%s = %q, want 127.0.0.1:port", HeadersKeyRemoteAddr, ra[0])
			}
		})
	}
}

func TestHTTPCookies(t *testing.T) {
	s := NewHTTP("web-3")
	r := startHTTP(t, s)
	base := "http://" + r.addr
	tests := []struct {
		name   string
		set    []string // /cookie queries sent first, through a cookie jar
		header string   // raw Cookie header, when no jar
		want   map[string]string
	}{
		{name: "none", want: map[string]string{}},
		{name: "set then echoed", set: []string{"name=sid&value=42", "name=lang&value=en&max_age=100"},
			want: map[string]string{"sid": "42", "lang": "en"}},
		{name: "expired by max_age", set: []string{"name=sid&value=42", "name=sid&value=x&max_age=-1"},
			want: map[string]string{}},
		{name: "raw header", header: "a=1; b=two", want: map[string]string{"a": "1", "b": "two"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t)
			jar, err := cookiejar.New(nil)
			if err != nil {
				t.Fatal(err)
			}
			c.Jar = jar
			for _, q := range tc.set {
				if res := do(t, c, http.MethodGet, base+"/cookie?"+q, nil); res.status != 200 || res.body != "web-3\n" {
					t.Fatalf("/cookie?%s: %d %q", q, res.status, res.body)
				}
			}
			var hdr http.Header
			if tc.header != "" {
				hdr = http.Header{"Cookie": {tc.header}}
			}
			res := do(t, c, http.MethodGet, base+"/cookies", hdr)
			var got map[string]string
			if err := json.Unmarshal([]byte(res.body), &got); err != nil {
				t.Fatalf("body %q: %v", res.body, err)
			}
			if len(got) != len(tc.want) {
				t.Errorf("cookies = %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("cookie %s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestHTTPEchoStreams10MiB(t *testing.T) {
	const size = 10 << 20
	s := NewHTTP("web-4")
	r := startHTTP(t, s)
	want := sha256.New()
	if _, err := io.Copy(want, &patternReader{n: size}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		client        *http.Client
		contentLength bool
		expect100     bool
	}{
		{name: "chunked", client: newClient(t)},
		{name: "content length", client: newClient(t), contentLength: true},
		{name: "100-continue", client: newClient(t), contentLength: true, expect100: true},
		{name: "h2c", client: newH2CClient(t)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// net/http does not know patternReader's length: without ContentLength it
			// streams the body chunked.
			req, err := http.NewRequest(http.MethodPut, "http://"+r.addr+"/echo", &patternReader{n: size})
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentLength {
				req.ContentLength = size
			}
			if tc.expect100 {
				req.Header.Set("Expect", "100-continue")
			}
			req.Header.Set("Content-Type", "application/x-test")
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got := sha256.New()
			n, err := io.Copy(got, resp.Body)
			if err != nil {
				t.Fatalf("reading echo after %d bytes: %v", n, err)
			}
			if n != size || string(got.Sum(nil)) != string(want.Sum(nil)) {
				t.Errorf("echoed %d bytes (digest match %v), want %d identical bytes", n, string(got.Sum(nil)) == string(want.Sum(nil)), size)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/x-test" {
				t.Errorf("Content-Type = %q, want the request's", ct)
			}
		})
	}
}

func TestHTTPDelay(t *testing.T) {
	s := NewHTTP("web-5")
	r := startHTTP(t, s)
	c := newClient(t)

	t.Run("honoured", func(t *testing.T) {
		begin := time.Now()
		res := do(t, c, http.MethodGet, "http://"+r.addr+"/delay?ms=150", nil)
		if took := time.Since(begin); took < 150*time.Millisecond {
			t.Errorf("answered after %v, want at least 150ms", took)
		}
		if res.status != 200 || res.body != "web-5\n" {
			t.Errorf("got %d %q", res.status, res.body)
		}
	})

	t.Run("cancelled by the client", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.addr+"/delay?ms=30000", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Do(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Do = %v, want deadline exceeded", err)
		}
		// The handler must give up too, not sleep out its 30 s.
		deadline := time.Now().Add(2 * time.Second)
		for strings.Contains(serverGoroutines(), "serveDelay") {
			if time.Now().After(deadline) {
				t.Fatalf("delay handler still running after the client left:\n%s", serverGoroutines())
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func TestHTTPCounters(t *testing.T) {
	s := NewHTTP("web-6")
	r := startHTTP(t, s)
	c := newClient(t) // one keep-alive connection, requests in sequence
	paths := []string{"/", "/a", "/b/c", "/health", "/health", "/headers", "/cookie?name=a&value=b",
		"/cookies", "/bytes?n=5", "/echo", "/delay?ms=1", "/status/500", "/status/200", "/ws"}
	for _, p := range paths {
		do(t, c, http.MethodGet, "http://"+r.addr+p, nil)
	}
	want := Counters{Requests: uint64(len(paths)), Connections: 1}
	want.ByPath[PathRoot] = 3
	want.ByPath[PathHealth] = 2
	want.ByPath[PathHeaders] = 1
	want.ByPath[PathCookie] = 1
	want.ByPath[PathCookies] = 1
	want.ByPath[PathBytes] = 1
	want.ByPath[PathEcho] = 1
	want.ByPath[PathDelay] = 1
	want.ByPath[PathStatus] = 2
	want.ByPath[PathWebSocket] = 1
	if got := s.Counters(); got != want {
		t.Errorf("Counters() = %+v, want %+v", got, want)
	}
	if got := s.Requests(); got != uint64(len(paths)) {
		t.Errorf("Requests() = %d, want %d", got, len(paths))
	}
	before := s.Counters()
	h2 := newH2CClient(t)
	for range 5 {
		do(t, h2, http.MethodGet, "http://"+r.addr+"/", nil)
	}
	d := s.Counters().Sub(before)
	if d.Requests != 5 || d.ByPath[PathRoot] != 5 || d.Connections != 1 {
		t.Errorf("after 5 h2c requests on one connection: delta %+v", d)
	}
}

// TestHTTPRootAllocations checks that / allocates nothing of its own: the server's
// header map and buffers are net/http's business.
func TestHTTPRootAllocations(t *testing.T) {
	s := NewHTTP("web-7")
	w := &discardWriter{h: make(http.Header)}
	req, err := http.NewRequest(http.MethodGet, "http://x/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		clear(w.h)
		s.ServeHTTP(w, req)
	}); n != 0 {
		t.Errorf("ServeHTTP(/) allocates %v times per request, want 0", n)
	}
	if w.status != 0 || string(w.body) != "web-7\n" {
		t.Errorf("wrote status %d body %q", w.status, w.body)
	}
}

type discardWriter struct {
	h      http.Header
	status int
	body   []byte
}

func (w *discardWriter) Header() http.Header  { return w.h }
func (w *discardWriter) WriteHeader(code int) { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) {
	w.body = append(w.body[:0], p...)
	return len(p), nil
}
