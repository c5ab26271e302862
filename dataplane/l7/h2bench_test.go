package l7

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"

	"go.uber.org/zap"
	"golang.org/x/net/http2"
)

// rawH2Client sends h2c GETs from one fixed header block (static table and
// literals only, so it keeps no HPACK state) and reads the responses'
// frames without allocating: a benchmark's allocations are the proxy's.
type rawH2Client struct {
	c      net.Conn
	br     *bufio.Reader
	next   uint32
	block  []byte
	out    []byte
	frame  []byte
	unack  int // DATA bytes not yet returned to the connection window
	header [9]byte
}

func dialRawH2(tb testing.TB, addr netip.AddrPort) *rawH2Client {
	tb.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	rc := &rawH2Client{c: c, br: bufio.NewReaderSize(c, 32<<10), next: 1, frame: make([]byte, 16<<10)}
	// :method GET, :scheme http, :path /index.html (indexed); :authority
	// and user-agent as literals without indexing.
	rc.block = []byte{0x82, 0x86, 0x85, 0x01, byte(len("www.example.com"))}
	rc.block = append(rc.block, "www.example.com"...)
	rc.block = append(rc.block, 0x0f, 0x2b, byte(len("bench")))
	rc.block = append(rc.block, "bench"...)
	pre := append([]byte(http2.ClientPreface), appendSettings(nil)...)
	if _, err := c.Write(pre); err != nil {
		tb.Fatal(err)
	}
	return rc
}

var errH2Response = errors.New("unexpected HTTP/2 response")

// do sends n requests at once and reads until all have ended.
func (rc *rawH2Client) do(n int) error {
	rc.out = rc.out[:0]
	for range n {
		rc.out = appendHeaders(rc.out, rc.next, rc.block, true, h2MaxFrameLen)
		rc.next += 2
	}
	if _, err := rc.c.Write(rc.out); err != nil {
		return err
	}
	for done := 0; done < n; {
		if _, err := io.ReadFull(rc.br, rc.header[:]); err != nil {
			return err
		}
		length := int(rc.header[0])<<16 | int(rc.header[1])<<8 | int(rc.header[2])
		t, flags := http2.FrameType(rc.header[3]), http2.Flags(rc.header[4])
		if length > len(rc.frame) {
			return errH2Response
		}
		if _, err := io.ReadFull(rc.br, rc.frame[:length]); err != nil {
			return err
		}
		switch t {
		case http2.FrameHeaders:
			if flags.Has(http2.FlagHeadersEndStream) {
				return errH2Response // the backend always answers a body
			}
		case http2.FrameData:
			rc.unack += length
			if flags.Has(http2.FlagDataEndStream) {
				done++
			}
		case http2.FrameRSTStream, http2.FrameGoAway:
			return fmt.Errorf("%w: %v", errH2Response, t)
		}
	}
	if rc.unack > 16<<10 {
		var wu [13]byte
		copy(wu[:9], appendFrameHeader(nil, 4, http2.FrameWindowUpdate, 0, 0))
		binary.BigEndian.PutUint32(wu[9:], uint32(rc.unack))
		rc.unack = 0
		if _, err := rc.c.Write(wu[:]); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkProxyH2 proxies h2c GETs over loopback to the minimal backend,
// one stream at a time and 16 at once on one connection. allocs/op is the
// proxy's; cpu-us/op the whole process's, as in BenchmarkProxyKeepAlive.
func BenchmarkProxyH2(b *testing.B) {
	for _, streams := range []int{1, 16} {
		b.Run(fmt.Sprintf("streams-%d", streams), func(b *testing.B) {
			rb := startRawBackend(b)
			rc := dialRawH2(b, benchProxy(b, rb, zap.NewNop(), Options{}, Headers{}))
			for range 20 { // warm: backend connections, workers, buffers
				if err := rc.do(streams); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i += streams {
				if err := rc.do(min(streams, b.N-i)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
		})
	}
}
