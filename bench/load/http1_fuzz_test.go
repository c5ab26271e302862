package load

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzReadResponse feeds arbitrary bytes to the HTTP/1.1 response parser: it must
// return (a response or an error), never panic or loop.
func FuzzReadResponse(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\nhello\r\n0\r\nT: 1\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\nbody to the end",
		"HTTP/1.1 999 X\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n",
		"\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w := &h1Worker{t: &h1Target{}, br: bufio.NewReaderSize(bytes.NewReader(data), h1Buffer)}
		for range 8 { // a few responses, as on a kept-alive connection
			code, keep, err := w.readResponse()
			if err != nil {
				return
			}
			if code < 100 || code > 999 {
				t.Fatalf("code %d accepted", code)
			}
			if !keep {
				return
			}
		}
	})
}
