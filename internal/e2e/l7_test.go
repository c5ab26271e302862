package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/internal/netlab"
)

// The HTTP listeners' backends are the lab's HTTP servers on port 8080.
const webServers = `      - {address: 198.19.0.11, weight: 100}
      - {address: 198.19.0.12, weight: 100}
      - {address: 198.19.0.13, weight: 50}`

// webGroups puts each backend in a group of its own.
const webGroups = `
server_groups:
  - {id: g1, servers: [{address: 198.19.0.11, port: 8080}]}
  - {id: g2, servers: [{address: 198.19.0.12, port: 8080}]}
  - {id: g3, servers: [{address: 198.19.0.13, port: 8080}]}
`

// webClient is an HTTP/1.1 client in the lab's client host.
func (e *env) webClient(keepAlive bool) *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: e.lab.Dialer(netlab.HostClient), DisableKeepAlives: !keepAlive,
		DisableCompression: true, MaxIdleConnsPerHost: 8,
	}}
}

// webDo sends a request to the VIP and returns status, headers and body.
func (e *env) webDo(c *http.Client, method string, port int, path string, body io.Reader, hdr ...string) (int, http.Header, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("http://%s:%d%s", netlab.VIP, port, path), body)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
		} else {
			req.Header.Add(hdr[i], hdr[i+1])
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s :%d%s: %v", method, port, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s :%d%s: body: %v", method, port, path, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// webShares sends n GETs and counts the backends that answered.
func (e *env) webShares(c *http.Client, port, n int, hdr ...string) map[string]int {
	e.t.Helper()
	got := map[string]int{}
	for range n {
		code, h, _ := e.webDo(c, http.MethodGet, port, "/", nil, hdr...)
		if code != 200 {
			e.t.Fatalf("GET :%d/ answered %d", port, code)
		}
		got[h.Get("X-Backend")]++
	}
	return got
}

func (e *env) backendRequests(name string) uint64 { return e.backends.ByName(name).HTTP.Requests() }

func TestHTTPRulesSchedulersAndHeaders(t *testing.T) {
	e := start(t, 3, lbConfig(webServers, `
      - protocol: http
        port: 80
        backend_port: 8080
        scheduler: rr
        headers: {x_forwarded_for: true, x_forwarded_proto: true, lb_ip: true, lb_id: true}
        rules:
          - {domain: www.example.com, path: /api, server_group: g1}
          - {domain: www.example.com, server_group: g2}
          - {domain: "*.example.com", server_group: g3}
          - {path: /static, server_group: g1}
      - {protocol: http, port: 81, backend_port: 8080, scheduler: wrr}
      - {protocol: http, port: 82, backend_port: 8080, scheduler: wlc}`, webGroups))
	c := e.webClient(true)

	for _, tc := range []struct{ host, path, want string }{
		{"www.example.com", "/api/users", "be1"},
		{"WWW.example.com:80", "/", "be2"},
		{"shop.example.com", "/api", "be3"},
		{"a.b.example.com", "/static/x.css", "be3"},
		{"other.org", "/static/x.css", "be1"},
		{"example.com", "/static", "be1"},
	} {
		if _, h, _ := e.webDo(c, http.MethodGet, 80, tc.path, nil, "Host", tc.host); h.Get("X-Backend") != tc.want {
			t.Errorf("Host %s path %s went to %q, want %s", tc.host, tc.path, h.Get("X-Backend"), tc.want)
		}
	}
	// No rule matches: the default pool, in rr turns.
	if got := e.webShares(c, 80, 30, "Host", "other.org"); got["be1"] != 10 || got["be2"] != 10 || got["be3"] != 10 {
		t.Errorf("30 rr requests went %v, want 10 each", got)
	}
	if got := e.webShares(c, 81, 50); got["be1"] != 20 || got["be2"] != 20 || got["be3"] != 10 {
		t.Errorf("50 wrr requests with weights 100/100/50 went %v, want 20/20/10", got)
	}

	// wlc: two slow requests hold two backends; quick ones go to the third.
	var wg sync.WaitGroup
	slow := make(chan string, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.webClient(false).Get(fmt.Sprintf("http://%s:82/delay?ms=2000", netlab.VIP))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			slow <- resp.Header.Get("X-Backend")
		}()
	}
	delays := func() (n uint64) {
		for _, b := range e.backends.List {
			n += b.HTTP.Counters().ByPath[serve.PathDelay]
		}
		return n
	}
	for deadline := time.Now().Add(5 * time.Second); delays() < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slow requests did not arrive")
		}
	}
	free := ""
	for _, b := range e.backends.List {
		if b.HTTP.Counters().ByPath[serve.PathDelay] == 0 {
			free = b.Name
		}
	}
	if got := e.webShares(c, 82, 6); got[free] != 6 {
		t.Errorf("with two backends busy, 6 wlc requests went %v, want all to %s", got, free)
	}
	wg.Wait()

	// What the backend sees.
	_, _, body := e.webDo(c, http.MethodGet, 81, "/headers", nil, "X-Forwarded-For", "203.0.113.99")
	_, _, body80 := e.webDo(c, http.MethodGet, 80, "/headers", nil, "Host", "other.org", "X-Forwarded-For", "203.0.113.99")
	var h, h80 map[string][]string
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(body80), &h80); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"X-Forwarded-For": "203.0.113.99, " + netlab.ClientIP, "X-Forwarded-Proto": "http",
		"X-Lb-Ip": netlab.VIP, "X-Lb-Id": "lb", serve.HeadersKeyHost: "other.org",
	} {
		if got := h80[k]; len(got) != 1 || got[0] != v {
			t.Errorf("backend saw %s = %q, want %q", k, got, v)
		}
	}
	if got := h["X-Forwarded-For"]; len(got) != 1 || got[0] != "203.0.113.99" {
		t.Errorf("listener without headers: X-Forwarded-For %q, want the client's own value only", got)
	}
	for _, k := range []string{"X-Lb-Ip", "X-Lb-Id", "X-Forwarded-Proto"} {
		if _, ok := h[k]; ok {
			t.Errorf("listener without headers added %s", k)
		}
	}
	if got := e.metric(`xlb_http_requests_total{code_class="2xx",lb="lb",listener="lb/http/81"}`); got != 51 {
		t.Errorf("xlb_http_requests_total for :81 = %v, want 51", got)
	}
}

func TestHTTPCookiePersistence(t *testing.T) {
	check := `{type: http, path: /health, interval: 1s, timeout: 1s, healthy_threshold: 2, unhealthy_threshold: 2}`
	e := start(t, 3, lbConfig(webServers, `
      - {protocol: http, port: 80, backend_port: 8080, persistence: {type: insert_cookie, timeout: 600s}, health_check: `+check+`}
      - {protocol: http, port: 81, backend_port: 8080, persistence: {type: rewrite_cookie, cookie: SESSION}, health_check: `+check+`}`))
	c := e.webClient(true)

	// insert_cookie: the balancer's cookie pins the client.
	_, h, _ := e.webDo(c, http.MethodGet, 80, "/", nil)
	first := h.Get("X-Backend")
	sc := h.Get("Set-Cookie")
	if !strings.HasPrefix(sc, "XLBSERVERID=") || !strings.Contains(sc, "Max-Age=600") || !strings.Contains(sc, "HttpOnly") ||
		strings.Contains(sc, "198.19.0.") {
		t.Fatalf("Set-Cookie %q: want XLBSERVERID with Max-Age=600, HttpOnly, no backend address", sc)
	}
	cookie := strings.SplitN(sc, ";", 2)[0]
	if got := e.webShares(c, 80, 10, "Cookie", cookie); got[first] != 10 {
		t.Errorf("10 requests with the cookie went %v, want all to %s", got, first)
	}
	_, h, _ = e.webDo(c, http.MethodGet, 80, "/", nil, "Cookie", "XLBSERVERID=198.19.0.12:8080")
	if h.Get("Set-Cookie") == "" {
		t.Error("a forged cookie got no new cookie")
	}
	if got := e.metric(`xlb_http_errors_total{lb="lb",listener="lb/http/80",reason="forged_cookie"}`); got != 1 {
		t.Errorf("forged_cookie = %v, want 1", got)
	}
	// Its backend goes down: the client is re-picked and its cookie reset.
	e.backends.ByName(first).HTTP.SetHealthy(false)
	t.Cleanup(func() { e.backends.ByName(first).HTTP.SetHealthy(true) })
	e.waitMetric(fmt.Sprintf(`xlb_backend_up{backend="%s:8080",check="http"}`, e.backends.ByName(first).IP), 0, 10*time.Second)
	_, h, _ = e.webDo(c, http.MethodGet, 80, "/", nil, "Cookie", cookie)
	if h.Get("X-Backend") == first {
		t.Errorf("the cookie of a down backend still went to %s", first)
	}
	if nc := strings.SplitN(h.Get("Set-Cookie"), ";", 2)[0]; nc == "" || nc == cookie {
		t.Errorf("stale cookie: Set-Cookie %q, want a new server id", h.Get("Set-Cookie"))
	}

	// rewrite_cookie: the app's own cookie carries the server id.
	_, h, _ = e.webDo(c, http.MethodGet, 81, "/cookie?name=SESSION&value=s3cr3t", nil)
	owner := h.Get("X-Backend")
	sc = h.Get("Set-Cookie")
	if !strings.HasPrefix(sc, "SESSION=") || !strings.Contains(sc, "~s3cr3t") {
		t.Fatalf("rewritten Set-Cookie %q, want SESSION=<server id>~s3cr3t", sc)
	}
	cookie = strings.SplitN(sc, ";", 2)[0]
	for range 5 {
		_, h, body := e.webDo(c, http.MethodGet, 81, "/cookies", nil, "Cookie", cookie)
		var got map[string]string
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		if h.Get("X-Backend") != owner || got["SESSION"] != "s3cr3t" {
			t.Errorf("request with the rewritten cookie went to %s, app saw SESSION=%q; want %s and s3cr3t",
				h.Get("X-Backend"), got["SESSION"], owner)
		}
	}
}

func TestHTTPBodiesGzipWebSocketH2C(t *testing.T) {
	e := start(t, 1, lbConfig(`      - {address: 198.19.0.11}`, `
      - {protocol: http, port: 80, backend_port: 8080, gzip: true}
      - {protocol: http, port: 81, backend_port: 8080}`))
	c := e.webClient(true)

	// gzip by listener, type, size and the client's Accept-Encoding.
	for _, tc := range []struct {
		port    int
		path    string
		accept  string
		gzipped bool
		size    int
	}{
		{80, "/bytes?n=4000&type=text/html", "gzip", true, 4000},
		{80, "/bytes?n=4000&type=application/json", "gzip, deflate", true, 4000},
		{80, "/bytes?n=4000&type=text/css", "", false, 4000},
		{80, "/bytes?n=1000&type=text/html", "gzip", false, 1000},
		{80, "/bytes?n=4000&type=image/jpeg", "gzip", false, 4000},
		{81, "/bytes?n=4000&type=text/html", "gzip", false, 4000},
	} {
		var hdr []string
		if tc.accept != "" {
			hdr = []string{"Accept-Encoding", tc.accept}
		}
		_, h, body := e.webDo(c, http.MethodGet, tc.port, tc.path, nil, hdr...)
		data := []byte(body)
		if got := h.Get("Content-Encoding") == "gzip"; got != tc.gzipped {
			t.Errorf(":%d%s Accept-Encoding %q: gzip %v, want %v", tc.port, tc.path, tc.accept, got, tc.gzipped)
			continue
		}
		if tc.gzipped {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			data, _ = io.ReadAll(zr)
			if h.Get("Vary") != "Accept-Encoding" {
				t.Errorf("gzipped answer without Vary: Accept-Encoding")
			}
		}
		if len(data) != tc.size {
			t.Errorf(":%d%s: %d bytes, want %d", tc.port, tc.path, len(data), tc.size)
		}
	}

	// A 20 MiB chunked upload echoed back, streamed both ways.
	const size = 20 << 20
	src := &randReader{rng: rand.NewChaCha8([32]byte{7}), n: size}
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://%s:81/echo", netlab.VIP), src)
	req.ContentLength = -1
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.New()
	n, err := io.Copy(sum, resp.Body)
	resp.Body.Close()
	want := sha256.New()
	_, _ = io.Copy(want, &randReader{rng: rand.NewChaCha8([32]byte{7}), n: size})
	if err != nil || n != size || !bytes.Equal(sum.Sum(nil), want.Sum(nil)) {
		t.Errorf("20 MiB chunked echo: %d bytes, %v, digest match %v", n, err, bytes.Equal(sum.Sum(nil), want.Sum(nil)))
	}

	// 100-continue with curl.
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	payload := bytes.Repeat([]byte("continue "), 2000)
	if err := os.WriteFile(in, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	trace, err := e.lab.Run(ctx, netlab.HostClient, "curl", "-sS", "-v", "-H", "Expect: 100-continue",
		"--data-binary", "@"+in, "-o", out, fmt.Sprintf("http://%s:81/echo", netlab.VIP))
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	if !strings.Contains(string(trace), "< HTTP/1.1 100 Continue") || !strings.Contains(string(trace), "< HTTP/1.1 200 OK") {
		t.Errorf("curl with Expect: 100-continue saw:\n%s", trace)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, payload) {
		t.Errorf("100-continue echo returned %d bytes, want %d", len(got), len(payload))
	}

	// WebSocket echo through the proxy.
	conn, err := e.lab.Dial(ctx, netlab.HostClient, "tcp", netlab.VIP+":81")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	key := "x3JJHMbDL1EzLkh9GBhXDw=="
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: ws.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	br := bufio.NewReader(conn)
	wsResp, err := http.ReadResponse(br, nil)
	if err != nil || wsResp.StatusCode != 101 || wsResp.Header.Get("Sec-WebSocket-Accept") != serve.WebSocketAccept(key) {
		t.Fatalf("websocket handshake: %v %v", wsResp, err)
	}
	for _, msg := range []string{"ping through xlb", strings.Repeat("w", 100000)} {
		if err := wsSend(conn, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if got, err := wsRecv(br); err != nil || string(got) != msg {
			t.Errorf("websocket echo of %d bytes: %d bytes, %v", len(msg), len(got), err)
		}
	}

	// h2c with prior knowledge.
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &protos, DialContext: e.lab.Dialer(netlab.HostClient)}}
	hresp, err := h2.Get(fmt.Sprintf("http://%s:81/", netlab.VIP))
	if err != nil {
		t.Fatal(err)
	}
	hbody, _ := io.ReadAll(hresp.Body)
	hresp.Body.Close()
	if hresp.ProtoMajor != 2 || string(hbody) != "be1\n" {
		t.Errorf("h2c: %s %q", hresp.Proto, hbody)
	}
	curlH2, err := e.lab.Run(ctx, netlab.HostClient, "curl", "-sS", "--http2-prior-knowledge", "-w", " %{http_version}",
		fmt.Sprintf("http://%s:81/", netlab.VIP))
	if err != nil || string(curlH2) != "be1\n 2" {
		t.Errorf("curl --http2-prior-knowledge: %q %v", curlH2, err)
	}
}

func TestHTTPRetriesAndErrors(t *testing.T) {
	// be1:8081 refuses connections; health checks are off so only the
	// proxy's own failure handling is at work.
	e := start(t, 2, lbConfig(`      - {address: 198.19.0.11, weight: 0}`, `
      - {protocol: http, port: 80, scheduler: rr, server_group: flaky, health_check: {enabled: false}}
      - {protocol: http, port: 81, backend_port: 8080}`, `
server_groups:
  - id: flaky
    servers: [{address: 198.19.0.11, port: 8081}, {address: 198.19.0.12, port: 8080}]
`))
	c := e.webClient(true)
	be2 := e.backendRequests("be2")
	// Three GETs: at most three connection failures, below passive
	// health's threshold of five, so the refusing backend stays in rotation.
	for i := range 3 {
		if code, h, _ := e.webDo(c, http.MethodGet, 80, "/", nil); code != 200 || h.Get("X-Backend") != "be2" {
			t.Errorf("GET %d: %d from %q, want 200 from be2 (retried past the refusing backend)", i, code, h.Get("X-Backend"))
		}
	}
	if got := e.backendRequests("be2") - be2; got != 3 {
		t.Errorf("be2 served %d GETs, want 3", got)
	}
	// rr alternates; POSTs that meet the refusing backend fail, not retried.
	failed := 0
	be2 = e.backendRequests("be2")
	for range 4 {
		code, _, _ := e.webDo(c, http.MethodPost, 80, "/echo", strings.NewReader("payload"))
		switch code {
		case 502:
			failed++
		case 200:
		default:
			t.Errorf("POST answered %d", code)
		}
	}
	if failed != 2 || e.backendRequests("be2")-be2 != 2 {
		t.Errorf("%d of 4 POSTs failed and be2 served %d, want 2 and 2: a POST is never retried",
			failed, e.backendRequests("be2")-be2)
	}
	if got := e.metric(`xlb_http_errors_total{lb="lb",listener="lb/http/80",reason="backend_connect"}`); got < 3 {
		t.Errorf("backend_connect errors = %v, want at least 3", got)
	}
	// Nothing eligible (the default pool's only server has weight 0).
	if code, _, body := e.webDo(c, http.MethodGet, 81, "/", nil); code != 503 || body != "service unavailable\n" {
		t.Errorf("no backend: %d %q, want 503", code, body)
	}
	if got := e.metric(`xlb_http_errors_total{lb="lb",listener="lb/http/81",reason="no_backend"}`); got != 1 {
		t.Errorf("no_backend errors = %v, want 1", got)
	}
}

func TestHTTPACLClosesDeniedClients(t *testing.T) {
	e := start(t, 1, lbConfig(`      - {address: 198.19.0.11}`, `
      - {protocol: http, port: 80, backend_port: 8080, acl: {mode: deny, cidrs: [`+netlab.ClientIP+`]}}
      - {protocol: http, port: 81, backend_port: 8080, acl: {mode: allow, cidrs: [198.18.1.0/24]}}`))
	if _, err := e.webClient(false).Get(fmt.Sprintf("http://%s:80/", netlab.VIP)); err == nil {
		t.Error("a denied client was answered")
	}
	if code, _, _ := e.webDo(e.webClient(false), http.MethodGet, 81, "/", nil); code != 200 {
		t.Errorf("allowed client: %d", code)
	}
	if got := e.metric(`xlb_http_errors_total{lb="lb",listener="lb/http/80",reason="acl"}`); got < 1 {
		t.Errorf("acl errors = %v", got)
	}
}

func TestHTTPReloadUnderLoad(t *testing.T) {
	listeners := func(scheduler, extra string) string {
		return lbConfig(webServers, `
      - {protocol: http, port: 80, backend_port: 8080, scheduler: `+scheduler+extra+`}`, webGroups)
	}
	e := start(t, 3, listeners("rr", ""))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.webClient(i > 0) // client 0 opens a connection per request
			for ctx.Err() == nil {
				resp, err := c.Get(fmt.Sprintf("http://%s:80/", netlab.VIP))
				if err != nil {
					failed.Add(1)
					t.Errorf("request during reloads: %v", err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					t.Errorf("status %d during reloads", resp.StatusCode)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	variants := []struct{ scheduler, extra string }{
		{"rr", `, rules: [{domain: new.example.com, server_group: g3}]`},
		{"wrr", ""},
		{"wlc", `, rules: [{path: /x, server_group: g1}]`},
		{"rr", `, rules: [{domain: new.example.com, server_group: g3}], headers: {lb_id: true}`},
	}
	for i, v := range variants {
		time.Sleep(200 * time.Millisecond)
		e.writeConfig(listeners(v.scheduler, v.extra))
		if err := e.xlbd.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		e.waitMetric(`xlb_config_reloads_total{result="success"}`, float64(i+1), 10*time.Second)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 100 {
		t.Errorf("%d requests ok and %d failed across %d reloads, want none failed", ok.Load(), failed.Load(), len(variants))
	}
	// The last configuration's rule is in force.
	c := e.webClient(false)
	if got := e.webShares(c, 80, 5, "Host", "new.example.com"); got["be3"] != 5 {
		t.Errorf("after the reloads Host new.example.com went %v, want all to be3", got)
	}
	_, _, body := e.webDo(c, http.MethodGet, 80, "/headers", nil)
	if !strings.Contains(body, `"X-Lb-Id":["lb"]`) {
		t.Errorf("the last reload's headers are not applied: %s", body)
	}
}

// randReader yields n pseudo-random bytes.
type randReader struct {
	rng *rand.ChaCha8
	n   int64
}

func (r *randReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	_, _ = r.rng.Read(p)
	r.n -= int64(len(p))
	return len(p), nil
}

// wsSend writes one masked text frame.
func wsSend(c net.Conn, p []byte) error {
	var b bytes.Buffer
	b.WriteByte(0x81)
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
	mask := [4]byte{9, 8, 7, 6}
	b.Write(mask[:])
	for i, x := range p {
		b.WriteByte(x ^ mask[i&3])
	}
	_, err := c.Write(b.Bytes())
	return err
}

// wsRecv reads one unmasked frame's payload.
func wsRecv(r *bufio.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var x [2]byte
		if _, err := io.ReadFull(r, x[:]); err != nil {
			return nil, err
		}
		n = uint64(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		if _, err := io.ReadFull(r, x[:]); err != nil {
			return nil, err
		}
		n = binary.BigEndian.Uint64(x[:])
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return p, err
}
