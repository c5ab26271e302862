package l7

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xlbproject/xlb/dataplane/pool"
)

func TestHTTPSchedulersShareRequests(t *testing.T) {
	b1, b2, b3 := startBackend(t, "be1"), startBackend(t, "be2"), startBackend(t, "be3")
	e := newEngine(t, Options{})
	tests := []struct {
		kind    pool.Kind
		weights [3]int
		n       int
		want    map[string]int
	}{
		{pool.RR, [3]int{100, 100, 50}, 30, map[string]int{"be1": 10, "be2": 10, "be3": 10}},
		{pool.WRR, [3]int{100, 100, 50}, 50, map[string]int{"be1": 20, "be2": 20, "be3": 10}},
		{pool.WRR, [3]int{100, 0, 100}, 20, map[string]int{"be1": 10, "be3": 10}},
		{pool.WLC, [3]int{100, 100, 50}, 50, map[string]int{"be1": 20, "be2": 20, "be3": 10}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v-%v", tc.kind, tc.weights), func(t *testing.T) {
			l := testListener(t, server(b1, tc.weights[0]), server(b2, tc.weights[1]), server(b3, tc.weights[2]))
			l.Default.Scheduler = tc.kind
			e.apply(Config{Listeners: []Listener{l}})
			c := client(true)
			got := map[string]int{}
			for range tc.n {
				_, body, _ := get(t, c, "http://"+l.Addr.String()+"/")
				got[strings.TrimSpace(body)]++
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("%d requests went %v, want %v", tc.n, got, tc.want)
			}
		})
	}
}

func TestHTTPWLCAvoidsBusyBackends(t *testing.T) {
	b1, b2, b3 := startBackend(t, "be1"), startBackend(t, "be2"), startBackend(t, "be3")
	e := newEngine(t, Options{})
	l := testListener(t, server(b1, 100), server(b2, 100), server(b3, 100))
	l.Default.Scheduler = pool.WLC
	e.apply(Config{Listeners: []Listener{l}})
	base := "http://" + l.Addr.String()
	// Two slow requests occupy two backends...
	var wg sync.WaitGroup
	slow := make(chan string, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client(false).Get(base + "/delay?ms=1500")
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			slow <- resp.Header.Get("X-Backend")
		}()
	}
	waitFor(t, 2*time.Second, "two requests in flight", func() bool { return b1.Requests()+b2.Requests()+b3.Requests() == 2 })
	idle := "be1"
	for _, b := range []*testBackend{b1, b2, b3} {
		if b.Requests() == 0 {
			idle = b.Name
		}
	}
	// ...so wlc sends the quick ones to the idle one.
	c := client(true)
	for i := range 6 {
		if _, body, _ := get(t, c, base+"/"); strings.TrimSpace(body) != idle {
			t.Errorf("quick request %d went to %s while %s was the only idle backend", i, strings.TrimSpace(body), idle)
		}
	}
	wg.Wait()
	close(slow)
	seen := map[string]bool{}
	for name := range slow {
		seen[name] = true
	}
	if len(seen) != 2 || seen[idle] {
		t.Errorf("slow requests went to %v, want two distinct backends other than %s", seen, idle)
	}
}

func TestHTTPRulesRouteByHostAndPath(t *testing.T) {
	def, api, web, static := startBackend(t, "default"), startBackend(t, "api"), startBackend(t, "web"), startBackend(t, "static")
	e := newEngine(t, Options{})
	l := testListener(t, server(def, 100))
	l.Groups = map[string]pool.Config{
		"api":    {Servers: []pool.Server{server(api, 100)}},
		"web":    {Servers: []pool.Server{server(web, 100)}},
		"static": {Servers: []pool.Server{server(static, 100)}},
	}
	l.Rules = []Rule{
		{Domain: "www.example.com", Path: "/api", Group: "api"},
		{Domain: "*.example.com", Group: "web"},
		{Path: "/static", Group: "static"},
	}
	e.apply(Config{Listeners: []Listener{l}})
	c := client(true)
	url := "http://" + l.Addr.String()
	tests := []struct{ host, path, want string }{
		{"www.example.com", "/api/v1", "api"},
		{"WWW.EXAMPLE.COM:8080", "/api", "api"},
		{"www.example.com", "/", "web"},
		{"a.b.example.com", "/static/x", "web"},
		{"other.org", "/static/x", "static"},
		{"other.org", "/", "default"},
		{"example.com", "/", "default"},
	}
	for _, tc := range tests {
		if _, body, _ := get(t, c, url+tc.path, "Host", tc.host); strings.TrimSpace(body) != tc.want {
			t.Errorf("Host %s path %s went to %q, want %q", tc.host, tc.path, strings.TrimSpace(body), tc.want)
		}
	}
}

func TestHTTPNoBackend503(t *testing.T) {
	b := startBackend(t, "be1")
	e := newEngine(t, Options{})
	l := testListener(t, server(b, 0))
	e.apply(Config{Listeners: []Listener{l}})
	c := client(true)
	code, body, _ := get(t, c, "http://"+l.Addr.String()+"/")
	if code != 503 || body != "service unavailable\n" {
		t.Errorf("weight-0 pool answered %d %q, want 503", code, body)
	}
	// The connection stays usable after a 503.
	if code, _, _ := get(t, c, "http://"+l.Addr.String()+"/"); code != 503 {
		t.Errorf("second request: %d", code)
	}
	// HEAD gets the same answer without a body, and the connection stays in sync.
	req, _ := http.NewRequest(http.MethodHead, "http://"+l.Addr.String()+"/", nil)
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, _, _ := get(t, c, "http://"+l.Addr.String()+"/"); code != 503 {
		t.Errorf("after HEAD: %d", code)
	}
	if got := e.counter("xlb_http_errors_total", "reason", "no_backend"); got != 4 {
		t.Errorf("no_backend errors = %v, want 4", got)
	}
	if got := e.counter("xlb_http_requests_total", "code_class", "5xx"); got != 4 {
		t.Errorf("5xx requests = %v, want 4", got)
	}
	if b.Requests() != 0 {
		t.Errorf("the weight-0 backend got %d requests", b.Requests())
	}
}

func TestHTTPInsertCookiePersistence(t *testing.T) {
	b1, b2 := startBackend(t, "be1"), startBackend(t, "be2")
	e := newEngine(t, Options{})
	l := testListener(t, server(b1, 100), server(b2, 100))
	l.Persistence = Persistence{Mode: InsertCookie, Timeout: 30 * time.Minute}
	e.apply(Config{Listeners: []Listener{l}})
	url := "http://" + l.Addr.String()
	c := client(true)

	_, body, resp := get(t, c, url+"/")
	first := strings.TrimSpace(body)
	sc := resp.Header.Values("Set-Cookie")
	if len(sc) != 1 || !strings.HasPrefix(sc[0], "XLBSERVERID=") || !strings.Contains(sc[0], "Max-Age=1800") ||
		!strings.Contains(sc[0], "HttpOnly") || !strings.Contains(sc[0], "Path=/") {
		t.Fatalf("first response Set-Cookie %q", sc)
	}
	if strings.Contains(sc[0], "127.0.0.1") || strings.Contains(sc[0], b1.addr.String()) {
		t.Errorf("cookie reveals the backend: %q", sc[0])
	}
	cookie := strings.SplitN(sc[0], ";", 2)[0]
	for i := range 6 {
		_, body, resp := get(t, c, url+"/", "Cookie", cookie)
		if got := strings.TrimSpace(body); got != first {
			t.Errorf("request %d with the cookie went to %s, want %s", i, got, first)
		}
		if v := resp.Header.Values("Set-Cookie"); len(v) != 0 {
			t.Errorf("request %d with a valid cookie got Set-Cookie %q", i, v)
		}
	}
	// The app never sees the balancer's cookie.
	_, body, _ = get(t, c, url+"/cookies", "Cookie", "app=1; "+cookie)
	if strings.Contains(body, "XLBSERVERID") || !strings.Contains(body, `"app":"1"`) {
		t.Errorf("backend saw cookies %s, want only app=1", body)
	}

	// A forged value is no cookie: counted, re-picked, reset.
	_, _, resp = get(t, c, url+"/", "Cookie", "XLBSERVERID="+b2.addr.String())
	if v := resp.Header.Values("Set-Cookie"); len(v) != 1 {
		t.Errorf("forged cookie: Set-Cookie %q, want a new cookie", v)
	}
	if got := e.counter("xlb_http_errors_total", "reason", "forged_cookie"); got != 1 {
		t.Errorf("forged_cookie errors = %v, want 1", got)
	}

	// The cookie's backend goes down: re-picked and reset.
	firstB := b1
	if first == "be2" {
		firstB = b2
	}
	l.Registry.Lookup(firstB.addr.String()).SetUp(false)
	_, body, resp = get(t, c, url+"/", "Cookie", cookie)
	if strings.TrimSpace(body) == first {
		t.Errorf("cookie for a down backend still went to %s", first)
	}
	if v := resp.Header.Values("Set-Cookie"); len(v) != 1 || strings.SplitN(v[0], ";", 2)[0] == cookie {
		t.Errorf("stale cookie: Set-Cookie %q, want a new server id", v)
	}
	if got := e.counter("xlb_http_errors_total", "reason", "forged_cookie"); got != 1 {
		t.Errorf("a stale cookie was counted as forged (%v)", got)
	}
}

func TestHTTPRewriteCookiePersistence(t *testing.T) {
	b1, b2 := startBackend(t, "be1"), startBackend(t, "be2")
	e := newEngine(t, Options{})
	l := testListener(t, server(b1, 100), server(b2, 100))
	l.Persistence = Persistence{Mode: RewriteCookie, Cookie: "SID"}
	e.apply(Config{Listeners: []Listener{l}})
	url := "http://" + l.Addr.String()
	c := client(true)

	_, body, resp := get(t, c, url+"/cookie?name=SID&value=app42")
	first := strings.TrimSpace(body)
	sc := resp.Header.Values("Set-Cookie")
	if len(sc) != 1 || !strings.HasPrefix(sc[0], "SID=") || !strings.Contains(sc[0], "~app42") {
		t.Fatalf("Set-Cookie %q, want SID=<server id>~app42", sc)
	}
	cookie := strings.SplitN(sc[0], ";", 2)[0]
	for i := range 4 {
		_, body, _ := get(t, c, url+"/cookies", "Cookie", cookie)
		var got map[string]string
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		if got["SID"] != "app42" {
			t.Errorf("request %d: the app saw SID=%q, want app42", i, got["SID"])
		}
		_, name, _ := get(t, c, url+"/", "Cookie", cookie)
		if strings.TrimSpace(name) != first {
			t.Errorf("request %d went to %s, want %s", i, strings.TrimSpace(name), first)
		}
	}
	// The backend goes down: another is picked and the client's cookie is
	// moved to it with the app's value kept.
	firstB := b1
	if first == "be2" {
		firstB = b2
	}
	l.Registry.Lookup(firstB.addr.String()).SetUp(false)
	_, body, resp = get(t, c, url+"/", "Cookie", cookie)
	if strings.TrimSpace(body) == first {
		t.Fatalf("went to the down backend %s", first)
	}
	if v := resp.Header.Values("Set-Cookie"); len(v) != 1 || !strings.HasSuffix(strings.SplitN(v[0], ";", 2)[0], "~app42") ||
		strings.SplitN(v[0], ";", 2)[0] == cookie {
		t.Errorf("re-picked: Set-Cookie %q, want a new server id with ~app42", v)
	}
}

func TestHTTPHeadersSeenByBackend(t *testing.T) {
	b := startBackend(t, "be1")
	e := newEngine(t, Options{})
	l := testListener(t, server(b, 100))
	l.Headers = Headers{XForwardedFor: true, XForwardedProto: true, LBIP: true, LBID: true}
	e.apply(Config{Listeners: []Listener{l}})
	_, body, _ := get(t, client(true), "http://"+l.Addr.String()+"/headers",
		"X-Forwarded-For", "198.51.100.9", "X-LB-ID", "spoofed", "Connection", "X-Private", "X-Private", "1")
	var h map[string][]string
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"X-Forwarded-For":   "198.51.100.9, 127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Lb-Ip":           "127.0.0.1",
		"X-Lb-Id":           "lb",
		"_host":             l.Addr.String(),
		"_proto":            "HTTP/1.1",
	}
	for k, v := range want {
		if got := h[k]; len(got) != 1 || got[0] != v {
			t.Errorf("backend saw %s: %q, want %q", k, got, v)
		}
	}
	if _, ok := h["X-Private"]; ok {
		t.Error("a field named by Connection reached the backend")
	}
}

func TestHTTPGzip(t *testing.T) {
	b := startBackend(t, "be1")
	e := newEngine(t, Options{})
	on := testListener(t, server(b, 100))
	on.Gzip = true
	off := testListener(t, server(b, 100))
	off.Name = "lb/http/off"
	e.apply(Config{Listeners: []Listener{on, off}})
	c := client(true)
	tests := []struct {
		name    string
		l       Listener
		path    string
		accept  string
		gzipped bool
		size    int
	}{
		{"html 2000 bytes", on, "/bytes?n=2000&type=text/html", "gzip", true, 2000},
		{"json 5000 bytes", on, "/bytes?n=5000&type=application/json", "gzip, br", true, 5000},
		{"below 1 KiB", on, "/bytes?n=1000&type=text/html", "gzip", false, 1000},
		{"image", on, "/bytes?n=5000&type=image/png", "gzip", false, 5000},
		{"client without gzip", on, "/bytes?n=5000&type=text/html", "", false, 5000},
		{"listener without gzip", off, "/bytes?n=5000&type=text/html", "gzip", false, 5000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := []string{}
			if tc.accept != "" {
				hdr = append(hdr, "Accept-Encoding", tc.accept)
			}
			_, body, resp := get(t, c, "http://"+tc.l.Addr.String()+tc.path, hdr...)
			enc := resp.Header.Get("Content-Encoding")
			if (enc == "gzip") != tc.gzipped {
				t.Fatalf("Content-Encoding %q, want gzip %v", enc, tc.gzipped)
			}
			data := []byte(body)
			if tc.gzipped {
				if resp.Header.Get("Vary") != "Accept-Encoding" || resp.ContentLength != -1 {
					t.Errorf("gzipped: Vary %q Content-Length %d", resp.Header.Get("Vary"), resp.ContentLength)
				}
				zr, err := gzip.NewReader(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				if data, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
				if len(body) >= tc.size/2 {
					t.Errorf("compressed %d bytes to %d", tc.size, len(body))
				}
			}
			if len(data) != tc.size {
				t.Errorf("body %d bytes, want %d", len(data), tc.size)
			}
		})
	}
	// Unknown length (chunked from the backend): decided on the first KiB.
	for _, n := range []int{500, 3000} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+on.Addr.String()+"/echo", io.MultiReader(strings.NewReader(strings.Repeat("x", n))))
		req.ContentLength = -1
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		gz := resp.Header.Get("Content-Encoding") == "gzip"
		if gz != (n >= gzipMinLength) {
			t.Errorf("chunked echo of %d bytes: gzip %v", n, gz)
		}
		if gz {
			zr, _ := gzip.NewReader(bytes.NewReader(data))
			data, _ = io.ReadAll(zr)
		} else if resp.ContentLength != int64(n) {
			t.Errorf("small chunked answer: Content-Length %d, want %d", resp.ContentLength, n)
		}
		if len(data) != n {
			t.Errorf("chunked echo of %d bytes returned %d", n, len(data))
		}
	}
}

func TestHTTPRedirectHTTPS(t *testing.T) {
	b := startBackend(t, "be1")
	e := newEngine(t, Options{})
	l := testListener(t, server(b, 100))
	l.RedirectHTTPS = &Redirect{Port: 8443, Status: 308}
	e.apply(Config{Listeners: []Listener{l}})
	c := client(true)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	code, _, resp := get(t, c, "http://"+l.Addr.String()+"/a?b=1", "Host", "Www.Example.com")
	if code != 308 || resp.Header.Get("Location") != "https://www.example.com:8443/a?b=1" {
		t.Errorf("redirect %d to %q", code, resp.Header.Get("Location"))
	}
	if b.Requests() != 0 {
		t.Error("a redirected request reached the backend")
	}
}

// waitFor polls cond until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHTTPBackendConnectionPool(t *testing.T) {
	b := startBackend(t, "be1")
	e := newEngine(t, Options{MaxIdlePerBackend: 2, BackendIdleTimeout: 300 * time.Millisecond})
	l := testListener(t, server(b, 100))
	e.apply(Config{Listeners: []Listener{l}})
	url := "http://" + l.Addr.String()
	// Sequential requests, even from new client connections, share one
	// backend connection.
	for range 20 {
		get(t, client(false), url+"/")
	}
	if got := b.Counters().Connections; got != 1 {
		t.Errorf("20 sequential requests opened %d backend connections, want 1", got)
	}
	// Idle past the timeout: not reused.
	time.Sleep(400 * time.Millisecond)
	get(t, client(false), url+"/")
	if got := b.Counters().Connections; got != 2 {
		t.Errorf("after the idle timeout: %d backend connections, want 2", got)
	}
	// Four at once need four connections; only two stay pooled after.
	burst := func() {
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client(false).Get(url + "/delay?ms=200")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}()
		}
		wg.Wait()
	}
	burst()
	before := b.Counters().Connections
	burst()
	if got := b.Counters().Connections - before; got != 2 {
		t.Errorf("second burst of 4 opened %d connections, want 2 (2 were pooled, the cap)", got)
	}
}
