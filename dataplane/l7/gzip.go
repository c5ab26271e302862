package l7

import (
	"bytes"
	"compress/gzip"
	"io"
	"sync"
)

// gzipMinLength is the smallest body worth compressing.
const gzipMinLength = 1024

// gzipLevel trades ratio for CPU as NGINX's default gzip_comp_level 1 does.
const gzipLevel = gzip.BestSpeed

// gzipTypes are the media types compressed (the list the managed balancers
// document).
var gzipTypes = []string{
	"text/xml", "text/plain", "text/css", "application/javascript",
	"application/x-javascript", "application/rss+xml", "application/atom+xml",
	"application/xml", "text/html", "application/json",
}

// gzipDecision says what to do with a response body.
type gzipDecision uint8

const (
	gzipNo    gzipDecision = iota
	gzipYes                // compress
	gzipProbe              // length unknown: buffer up to gzipMinLength to decide
)

// decideGzip applies the rules: the listener compresses, the client
// accepts gzip, the response has a body of a listed type that the backend
// did not encode, is not a range, and is at least gzipMinLength bytes.
func decideGzip(enabled, clientAccepts, head bool, resp *response) gzipDecision {
	if !enabled || !clientAccepts || head || resp.contentEncoding || resp.contentRange {
		return gzipNo
	}
	if resp.status < 200 || resp.status == 204 || resp.status == 206 || resp.status == 304 {
		return gzipNo
	}
	if !compressibleType(resp.contentType) {
		return gzipNo
	}
	switch resp.framing {
	case bodyLength:
		if resp.contentLength >= gzipMinLength {
			return gzipYes
		}
		return gzipNo
	case bodyNone:
		return gzipNo
	}
	return gzipProbe
}

// compressibleType matches the media type of a Content-Type value against
// gzipTypes, ignoring parameters and case.
func compressibleType(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = trimOWS(ct)
	for _, t := range gzipTypes {
		if equalFold(ct, t) {
			return true
		}
	}
	return false
}

// gzipPool reuses compressors: a flate writer is large and slow to make.
type gzipPool struct{ p sync.Pool }

func (g *gzipPool) get(w io.Writer) *gzip.Writer {
	if zw, ok := g.p.Get().(*gzip.Writer); ok {
		zw.Reset(w)
		return zw
	}
	zw, _ := gzip.NewWriterLevel(w, gzipLevel) // the level is valid
	return zw
}

func (g *gzipPool) put(zw *gzip.Writer) {
	zw.Reset(io.Discard)
	g.p.Put(zw)
}

// appendVary appends Vary: Accept-Encoding unless a Vary field of the
// response already covers it (the backend's own Vary fields pass through).
func appendVary(dst []byte, resp *response) []byte {
	if resp.varyAE {
		return dst
	}
	return append(dst, "Vary: Accept-Encoding\r\n"...)
}

// probeGzip settles a gzipProbe decision for a body of unknown length by
// reading up to gzipMinLength bytes into buf: gzipYes when that much came,
// gzipNo when the whole body was shorter (complete is then true: probe holds
// all of it). An error means the backend failed mid-body.
func probeGzip(b *body, buf []byte) (gz gzipDecision, probe []byte, complete bool, err error) {
	n, err := io.ReadAtLeast(b, buf[:gzipMinLength], gzipMinLength)
	probe = buf[:n]
	switch {
	case err == nil:
		return gzipYes, probe, false, nil
	case b.done:
		return gzipNo, probe, true, nil
	}
	return gzipNo, probe, false, err
}
