package l7

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/xlbproject/xlb/dataplane/limit"
)

// TestH2StreamsKeepTheirOwnAnswers runs many concurrent streams on few
// connections, GETs and uploads larger than the stream and connection
// windows, and cancels some midway: every answer that arrives must be the
// one its request asked for. Streams and their buffers are reused, so a
// stream answered with another's bytes would show here.
func TestH2StreamsKeepTheirOwnAnswers(t *testing.T) {
	e, addr := h2Proxy(t, nil)
	url := "http://" + addr
	c := h2cClient()

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 60 {
				if err := h2Check(c, url, rng, fmt.Sprintf("%d-%d", g, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.counter("xlb_http_requests_total", "code_class", "2xx"); n < 8*40 {
		t.Errorf("%v requests answered 2xx, want most of %d", n, 8*60)
	}
}

// h2Check sends one request, chosen by rng, and checks its answer.
func h2Check(c *http.Client, url string, rng *rand.Rand, id string) error {
	switch rng.IntN(4) {
	case 0: // an upload, echoed
		size := rng.IntN(600 << 10)
		seed := [32]byte{byte(size), byte(size >> 8), byte(size >> 16)}
		req, _ := http.NewRequest(http.MethodPost, url+"/echo", &patternReader{rng: rand.NewChaCha8(seed), n: int64(size)})
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("%s: upload of %d bytes: %w", id, size, err)
		}
		defer resp.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		want := sha256.New()
		_, _ = io.Copy(want, &patternReader{rng: rand.NewChaCha8(seed), n: int64(size)})
		if err != nil || n != int64(size) || !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
			return fmt.Errorf("%s: echo of %d bytes came back as %d bytes (%v), digest match %v",
				id, size, n, err, bytes.Equal(h.Sum(nil), want.Sum(nil)))
		}
	case 1: // cancelled while the backend waits
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+rng.IntN(20))*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/delay?ms=30", nil)
		if resp, err := c.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	default: // a GET whose answer names it
		req, _ := http.NewRequest(http.MethodGet, url+"/headers?id="+id, nil)
		req.Header.Set("X-Request", id)
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), `"X-Request":["`+id+`"]`) ||
			!strings.Contains(string(body), "/headers?id="+id+`"`) {
			return fmt.Errorf("%s: answered %d %q (%v)", id, resp.StatusCode, body, err)
		}
	}
	return nil
}

// h2Proxy runs a listener in front of one backend, "be", after set (if
// any) has changed it, and returns the engine and the listener's address.
func h2Proxy(t *testing.T, set func(*Listener)) (*testEngine, string) {
	t.Helper()
	b := startBackend(t, "be")
	e := newEngine(t, Options{})
	l := testListener(t, server(b, 100))
	if set != nil {
		set(&l)
	}
	e.apply(Config{Listeners: []Listener{l}})
	return e, l.Addr.String()
}

// rawH2 is a test client that speaks HTTP/2 frame by frame.
type rawH2 struct {
	t   *testing.T
	c   net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
}

func dialH2(t *testing.T, addr string, settings ...http2.Setting) *rawH2 {
	t.Helper()
	c := dialTest(t, addr)
	r := &rawH2{t: t, c: c, fr: http2.NewFramer(c, bufio.NewReader(c))}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.enc = hpack.NewEncoder(&r.buf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rawH2) headers(id uint32, end bool, fields ...string) {
	r.t.Helper()
	r.buf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		_ = r.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.buf.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawH2) get(id uint32, path string) {
	r.headers(id, true, ":method", "GET", ":scheme", "http", ":authority", "test", ":path", path)
}

// next reads frames until one that is not SETTINGS, WINDOW_UPDATE or PING.
func (r *rawH2) next() http2.Frame {
	r.t.Helper()
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatalf("reading a frame: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = r.fr.WriteSettingsAck()
			}
		case *http2.WindowUpdateFrame, *http2.PingFrame:
		default:
			return f
		}
	}
}

// response reads one stream's answer: status and body.
func (r *rawH2) response(id uint32) (string, string) {
	r.t.Helper()
	var status string
	var body []byte
	for {
		switch f := r.next().(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				r.t.Fatalf("HEADERS for stream %d, want %d", f.StreamID, id)
			}
			status = f.PseudoValue("status")
			if f.StreamEnded() {
				return status, string(body)
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				r.t.Fatalf("DATA for stream %d, want %d", f.StreamID, id)
			}
			body = append(body, f.Data()...)
			if f.StreamEnded() {
				return status, string(body)
			}
		case *http2.RSTStreamFrame:
			r.t.Fatalf("stream %d reset: %v", f.StreamID, f.ErrCode)
		case *http2.GoAwayFrame:
			r.t.Fatalf("GOAWAY %v", f.ErrCode)
		}
	}
}

// TestH2FlowControlOfResponses gives the proxy a stream window of a few
// bytes: the body arrives in pieces no larger than the window, each after
// a WINDOW_UPDATE, and whole.
func TestH2FlowControlOfResponses(t *testing.T) {
	_, addr := h2Proxy(t, nil)
	r := dialH2(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
	r.get(1, "/bytes?n=1000")
	var body []byte
	for len(body) < 1000 {
		switch f := r.next().(type) {
		case *http2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "200" {
				t.Fatalf("status %s", s)
			}
		case *http2.DataFrame:
			if len(f.Data()) > 100 {
				t.Fatalf("a DATA frame of %d bytes with a window of 100", len(f.Data()))
			}
			body = append(body, f.Data()...)
			if len(body) < 1000 && f.StreamEnded() {
				t.Fatalf("stream ended after %d of 1000 bytes", len(body))
			}
			if err := r.fr.WriteWindowUpdate(1, uint32(len(f.Data()))); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("unexpected %T", f)
		}
	}
	if len(body) != 1000 {
		t.Errorf("got %d bytes, want 1000", len(body))
	}
}

// TestH2ConcurrencyLimitAndReset checks the announced stream limit: one
// stream more is refused (retryable) while the others are served, and a
// stream the client resets stops its backend exchange.
func TestH2ConcurrencyLimitAndReset(t *testing.T) {
	_, addr := h2Proxy(t, nil)
	r := dialH2(t, addr)
	for i := range h2MaxStreams {
		r.get(uint32(2*i+1), "/delay?ms=300")
	}
	over := uint32(2*h2MaxStreams + 1)
	r.get(over, "/")
	for {
		f := r.next()
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			if rst.StreamID != over || rst.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("RST_STREAM %d %v, want %d REFUSED_STREAM", rst.StreamID, rst.ErrCode, over)
			}
			break
		}
		t.Fatalf("got %T before the refusal", f)
	}
	// Reset half of them; the rest are answered.
	for i := range h2MaxStreams / 2 {
		if err := r.fr.WriteRSTStream(uint32(2*i+1), http2.ErrCodeCancel); err != nil {
			t.Fatal(err)
		}
	}
	answered := map[uint32]bool{}
	for len(answered) < h2MaxStreams/2 {
		switch f := r.next().(type) {
		case *http2.DataFrame:
			if f.StreamID <= uint32(h2MaxStreams) {
				t.Fatalf("stream %d answered after its reset", f.StreamID)
			}
			if f.StreamEnded() {
				answered[f.StreamID] = true
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID <= uint32(h2MaxStreams) {
				t.Fatalf("stream %d answered after its reset", f.StreamID)
			}
		default:
			t.Fatalf("unexpected %T", f)
		}
	}
	// The connection still serves.
	r.get(over+2, "/")
	if status, body := r.response(over + 2); status != "200" || body != "be\n" {
		t.Errorf("after the resets: %s %q", status, body)
	}
}

// TestH2IdleAndShutdown checks the ends of a connection: an idle one gets
// GOAWAY and is closed after the idle timeout; at shutdown a busy one gets
// GOAWAY, its open stream is still answered, and then it closes.
func TestH2IdleAndShutdown(t *testing.T) {
	e, addr := h2Proxy(t, func(l *Listener) { l.Timeouts.Idle = 300 * time.Millisecond })

	idle := dialH2(t, addr)
	idle.get(1, "/")
	if status, _ := idle.response(1); status != "200" {
		t.Fatalf("status %s", status)
	}
	start := time.Now()
	ga, ok := idle.next().(*http2.GoAwayFrame)
	if !ok || ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID != 1 {
		t.Fatalf("idle connection: got %v, want GOAWAY NO_ERROR last stream 1", ga)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("GOAWAY after %v idle, want the 300ms timeout", d)
	}
	if _, err := idle.fr.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Errorf("after GOAWAY: %v, want the connection closed", err)
	}

	busy := dialH2(t, addr)
	busy.get(1, "/delay?ms=200")
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Drain(ctx)
	}()
	ga, ok = busy.next().(*http2.GoAwayFrame)
	if !ok || ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID != 1 {
		t.Fatalf("at shutdown: got %v, want GOAWAY NO_ERROR last stream 1", ga)
	}
	if status, body := busy.response(1); status != "200" || body != "be\n" {
		t.Errorf("the open stream after GOAWAY: %s %q", status, body)
	}
	if _, err := busy.fr.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last stream: %v, want the connection closed", err)
	}
	<-done
}

// TestH2FrameEncoding decodes what the frame writers produce with x/net's
// framer and HPACK decoder: header blocks split over CONTINUATION, DATA
// split by the frame size, and literal fields in and out of the static
// table.
func TestH2FrameEncoding(t *testing.T) {
	var b []byte
	block := appendStatus(nil, 302)
	long := strings.Repeat("v", 40000)
	block = appendHpackField(block, []byte("location"), []byte("/next"))
	block = appendHpackField(block, []byte("x-long"), []byte(long))
	block = appendHpackField(block, []byte("content-type"), []byte("text/plain; charset=utf-8"))
	b = appendHeaders(b, 3, block, false, h2MaxFrameLen)
	b = appendData(b, 3, bytes.Repeat([]byte{'d'}, 20000), true, h2MaxFrameLen)
	b = appendWindowUpdate(b, 0, 77)
	b = appendRSTStream(b, 5, http2.ErrCodeRefusedStream)
	b = appendGoAway(b, 5, http2.ErrCodeNo)

	fr := http2.NewFramer(nil, bytes.NewReader(b))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20
	f, err := fr.ReadFrame()
	mh, ok := f.(*http2.MetaHeadersFrame)
	if err != nil || !ok {
		t.Fatalf("headers: %v %T", err, f)
	}
	want := map[string]string{":status": "302", "location": "/next", "x-long": long, "content-type": "text/plain; charset=utf-8"}
	if len(mh.Fields) != len(want) {
		t.Errorf("%d fields, want %d", len(mh.Fields), len(want))
	}
	for _, hf := range mh.Fields {
		if want[hf.Name] != hf.Value {
			t.Errorf("field %s = %.20q", hf.Name, hf.Value)
		}
	}
	var data int
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		df, ok := f.(*http2.DataFrame)
		if !ok {
			t.Fatalf("%T in the body", f)
		}
		data += len(df.Data())
		if df.StreamEnded() {
			break
		}
	}
	if data != 20000 {
		t.Errorf("%d body bytes", data)
	}
	if f, _ := fr.ReadFrame(); f.(*http2.WindowUpdateFrame).Increment != 77 {
		t.Errorf("window update %v", f)
	}
	if f, _ := fr.ReadFrame(); f.(*http2.RSTStreamFrame).ErrCode != http2.ErrCodeRefusedStream {
		t.Errorf("rst %v", f)
	}
	if f, _ := fr.ReadFrame(); f.(*http2.GoAwayFrame).LastStreamID != 5 {
		t.Errorf("goaway %v", f)
	}
	for _, code := range []int{100, 200, 204, 301, 404, 503} {
		d := hpack.NewDecoder(4096, nil)
		fs, err := d.DecodeFull(appendStatus(nil, code))
		if err != nil || len(fs) != 1 || fs[0].Value != fmt.Sprint(code) {
			t.Errorf(":status %d decoded as %v %v", code, fs, err)
		}
	}
	if got := binary.BigEndian.Uint32(appendWindowUpdate(nil, 1, 1<<31|5)[9:]); got != 5 {
		t.Errorf("window update keeps the reserved bit: %x", got)
	}
}

// TestH2StalledWindowResets gives the proxy no window at all: after the
// idle timeout the stream is reset, so such a client holds neither the
// stream nor its backend for ever, and the connection still serves.
func TestH2StalledWindowResets(t *testing.T) {
	_, addr := h2Proxy(t, func(l *Listener) { l.Timeouts.Idle = 300 * time.Millisecond })
	r := dialH2(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	r.get(1, "/bytes?n=100")
	start := time.Now()
	for {
		f := r.next()
		if _, ok := f.(*http2.MetaHeadersFrame); ok {
			continue
		}
		rst, ok := f.(*http2.RSTStreamFrame)
		if !ok || rst.StreamID != 1 || rst.ErrCode != http2.ErrCodeCancel {
			t.Fatalf("got %v, want RST_STREAM 1 CANCEL", f)
		}
		break
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("reset after %v, want the 300ms idle timeout", d)
	}
	if err := r.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535}); err != nil {
		t.Fatal(err)
	}
	r.get(3, "/")
	if status, body := r.response(3); status != "200" || body != "be\n" {
		t.Errorf("after the reset: %s %q", status, body)
	}
}

// TestH2Bandwidth checks that the listener's bandwidth paces HTTP/2 as it
// does HTTP/1.1: a 1 MiB answer at 2 MiB/s takes at least the half second
// the rate allows (less the shaper's 50 ms burst), and the delay is
// recorded.
func TestH2Bandwidth(t *testing.T) {
	out := limit.NewShaper(2 << 20)
	_, addr := h2Proxy(t, func(l *Listener) { l.BandwidthOut = out })
	start := time.Now()
	resp, err := h2cClient().Get("http://" + addr + "/bytes?n=1048576")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != 1<<20 || resp.ProtoMajor != 2 {
		t.Fatalf("%s: %d bytes, %v", resp.Proto, n, err)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("1 MiB at 2 MiB/s arrived in %v", d)
	}
	if out.Waited() <= 0 {
		t.Error("the shaper recorded no delay")
	}
}

// TestH2RunningWorkersBound: streams a client reset leave the table at
// once while their workers may still be finishing (a backend dial goes on
// until its timeout). With twice the stream limit of such workers running,
// a new stream is refused, retryable, however empty the table is: a
// client that opens and resets streams in a loop cannot start work
// without bound.
func TestH2RunningWorkersBound(t *testing.T) {
	e, addr := h2Proxy(t, nil)
	e.mu.Lock()
	srv := e.listeners[netip.MustParseAddrPort(addr)].h2
	e.mu.Unlock()
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	c := newH2Conn(srv, &prefacedConn{Conn: server})
	c.running = 2 * h2MaxStreams

	b := newH2Block()
	b.start(&http2.HeadersFrame{FrameHeader: http2.FrameHeader{StreamID: 1,
		Flags: http2.FlagHeadersEndStream | http2.FlagHeadersEndHeaders}})
	if err := b.write(h2Seed(":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/"), false); err != nil {
		t.Fatal(err)
	}
	if err := b.finish(); err != nil {
		t.Fatal(err)
	}
	done := make(chan bool, 1)
	go func() { done <- c.onHeaders(b) }()
	_ = client.SetDeadline(time.Now().Add(5 * time.Second))
	f, err := http2.NewFramer(nil, client).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if rst, ok := f.(*http2.RSTStreamFrame); !ok || rst.StreamID != 1 || rst.ErrCode != http2.ErrCodeRefusedStream {
		t.Fatalf("got %v, want RST_STREAM 1 REFUSED_STREAM", f)
	}
	if !<-done {
		t.Error("the refusal ended the connection")
	}
	if len(c.streams) != 0 || c.running != 2*h2MaxStreams {
		t.Errorf("the refused stream was started: %d streams, %d running", len(c.streams), c.running)
	}
}
