package l7

import (
	"net/http"
	"strconv"
)

// errorPages are the proxy's own answers, rendered once: a short text body,
// in a keep-alive and a closing variant.
type errorPages struct {
	keep, close map[int][]byte
}

var errorBodies = map[int]string{
	400: "bad request\n",
	405: "method not allowed\n",
	408: "request timeout\n",
	417: "expectation failed\n",
	431: "request header fields too large\n",
	501: "not implemented\n",
	502: "bad gateway\n",
	503: "service unavailable\n",
	504: "gateway timeout\n",
	505: "http version not supported\n",
}

func newErrorPages() *errorPages {
	p := &errorPages{keep: map[int][]byte{}, close: map[int][]byte{}}
	for code, body := range errorBodies {
		head := "HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n" +
			"Content-Type: text/plain; charset=utf-8\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n" +
			"Cache-Control: no-store\r\n"
		p.keep[code] = []byte(head + "\r\n" + body)
		p.close[code] = []byte(head + "Connection: close\r\n\r\n" + body)
	}
	return p
}

func (p *errorPages) page(code int, keepAlive bool) []byte {
	if keepAlive {
		return p.keep[code]
	}
	return p.close[code]
}

// errorBody returns the text the proxy answers code with.
func errorBody(code int) string { return errorBodies[code] }
