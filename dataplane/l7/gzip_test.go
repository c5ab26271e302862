package l7

import "testing"

func TestHTTPDecideGzip(t *testing.T) {
	type in struct {
		enabled, accepts, head bool
		status                 int
		ctype                  string
		encoded, ranged        bool
		framing                int
		length                 int64
	}
	ok := in{enabled: true, accepts: true, status: 200, ctype: "text/html; charset=utf-8", framing: bodyLength, length: 4096}
	with := func(f func(*in)) in { x := ok; f(&x); return x }
	tests := []struct {
		name string
		in   in
		want gzipDecision
	}{
		{"compressible and large", ok, gzipYes},
		{"listener gzip off", with(func(x *in) { x.enabled = false }), gzipNo},
		{"client does not accept", with(func(x *in) { x.accepts = false }), gzipNo},
		{"HEAD", with(func(x *in) { x.head = true }), gzipNo},
		{"already encoded", with(func(x *in) { x.encoded = true }), gzipNo},
		{"range", with(func(x *in) { x.ranged = true; x.status = 206 }), gzipNo},
		{"304", with(func(x *in) { x.status = 304 }), gzipNo},
		{"204", with(func(x *in) { x.status = 204 }), gzipNo},
		{"404 page compressed", with(func(x *in) { x.status = 404 }), gzipYes},
		{"image", with(func(x *in) { x.ctype = "image/png" }), gzipNo},
		{"no content type", with(func(x *in) { x.ctype = "" }), gzipNo},
		{"json upper case", with(func(x *in) { x.ctype = "Application/JSON" }), gzipYes},
		{"javascript", with(func(x *in) { x.ctype = "application/javascript" }), gzipYes},
		{"x-javascript", with(func(x *in) { x.ctype = "application/x-javascript" }), gzipYes},
		{"css", with(func(x *in) { x.ctype = "text/css" }), gzipYes},
		{"xml", with(func(x *in) { x.ctype = "text/xml" }), gzipYes},
		{"application xml", with(func(x *in) { x.ctype = "application/xml" }), gzipYes},
		{"rss", with(func(x *in) { x.ctype = "application/rss+xml" }), gzipYes},
		{"atom", with(func(x *in) { x.ctype = "application/atom+xml" }), gzipYes},
		{"plain", with(func(x *in) { x.ctype = "text/plain" }), gzipYes},
		{"text/csv not listed", with(func(x *in) { x.ctype = "text/csv" }), gzipNo},
		{"1023 bytes", with(func(x *in) { x.length = 1023 }), gzipNo},
		{"exactly 1 KiB", with(func(x *in) { x.length = 1024 }), gzipYes},
		{"chunked: probe", with(func(x *in) { x.framing = bodyChunked; x.length = 0 }), gzipProbe},
		{"until close: probe", with(func(x *in) { x.framing = bodyClose; x.length = 0 }), gzipProbe},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := &response{status: tc.in.status, contentType: []byte(tc.in.ctype), contentEncoding: tc.in.encoded,
				contentRange: tc.in.ranged, framing: tc.in.framing, contentLength: tc.in.length}
			if got := decideGzip(tc.in.enabled, tc.in.accepts, tc.in.head, resp); got != tc.want {
				t.Errorf("decideGzip = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestHTTPAcceptsGzip(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"gzip", true}, {"gzip, deflate, br", true}, {"br;q=1.0, GZIP;q=0.8", true}, {"*", true},
		{"x-gzip", true}, {"deflate", false}, {"gzip;q=0", false}, {"gzip; q=0.000", false},
		{"*;q=0", false}, {"", false}, {"gzipfoo", false}, {"gzip;q=0.001", true},
	}
	for _, tc := range tests {
		if got := acceptsGzip([]byte(tc.v)); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

func TestHTTPIdempotent(t *testing.T) {
	for m, want := range map[string]bool{
		"GET": true, "HEAD": true, "OPTIONS": true, "PUT": true, "DELETE": true, "TRACE": true,
		"POST": false, "PATCH": false, "CONNECT": false, "get": false,
	} {
		if got := idempotent([]byte(m)); got != want {
			t.Errorf("idempotent(%s) = %v, want %v", m, got, want)
		}
	}
}
