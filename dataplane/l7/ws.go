package l7

import (
	"time"
)

// websocket completes an upgrade the backend accepted (101) and then splices
// bytes both ways until both directions end. Each direction that ends
// half-closes the other side and leaves the idle timeout to the other.
func (c *clientConn) websocket(st *listenerState, bc *backendConn, start time.Time) {
	resp := &c.resp
	out := append(c.out[:0], "HTTP/1.1 101 Switching Protocols\r\n"...)
	for i := range resp.hdrs {
		f := &resp.hdrs[i]
		if f.kind.hopByHop() || namedIn(resp.connTokens, f.name) {
			continue
		}
		out = appendField(out, f.name, f.value)
	}
	out = append(out, "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"...)
	c.out = out
	n0 := c.cw.n
	st.metrics.request(101)
	st.metrics.duration.Observe(time.Since(start).Seconds())
	_, err := c.cw.Write(out)
	c.logRequest(st, 101, bc.up.b.ID(), start)
	if err != nil {
		bc.close()
		return
	}
	idle := st.cfg.Timeouts.Idle
	_ = c.c.SetDeadline(time.Time{})
	_ = bc.c.SetDeadline(time.Time{})

	done := make(chan int64, 1)
	go func() { // backend to client
		var n int64
		if k := bc.rd.buffered(); k > 0 {
			w, _ := c.c.Write(bc.rd.buf[bc.rd.r:bc.rd.w])
			n += int64(w)
			bc.rd.discard(k)
		}
		m, _ := c.c.ReadFrom(bc.c) // splice(2)
		n += m
		_ = c.c.CloseWrite()
		_ = c.c.SetReadDeadline(time.Now().Add(idle))
		done <- n
	}()
	var in int64
	if k := c.rd.buffered(); k > 0 {
		w, _ := bc.rs.Write(c.rd.buf[c.rd.r:c.rd.w])
		in += int64(w)
		c.rd.discard(k)
	}
	m, _ := bc.c.ReadFrom(spliceSource(c.c))
	in += m
	_ = bc.c.CloseWrite()
	_ = bc.c.SetReadDeadline(time.Now().Add(idle))
	outBytes := <-done
	bc.close()
	c.cr.n += in
	c.cw.n += outBytes
	st.metrics.bytesOut.Add(float64(c.cw.n - n0))
}
