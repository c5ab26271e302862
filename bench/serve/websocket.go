package serve

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// MaxWebSocketFrame is the largest frame payload /ws accepts; a larger frame is closed
// with status 1009 (message too big).
const MaxWebSocketFrame = 16 << 20

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	wsContinuation = 0x0
	wsText         = 0x1
	wsBinary       = 0x2
	wsClose        = 0x8
	wsPing         = 0x9
	wsPong         = 0xa
)

// WebSocket close status codes (RFC 6455 section 7.4.1).
const (
	wsStatusProtocolError = 1002
	wsStatusTooBig        = 1009
)

// wsAcceptGUID is the fixed GUID of the RFC 6455 opening handshake.
const wsAcceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// WebSocketAccept returns the Sec-WebSocket-Accept value for a Sec-WebSocket-Key.
func WebSocketAccept(key string) string {
	sum := sha1.Sum([]byte(key + wsAcceptGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// serveWebSocket performs the opening handshake on a hijacked HTTP/1.1 connection and
// echoes data frames (fragments as they come), answers pings and echoes the close frame.
func (s *HTTP) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !headerHasToken(r.Header, "Connection", "upgrade") ||
		!headerHasToken(r.Header, "Upgrade", "websocket") {
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "websocket: want a GET with Connection: Upgrade and Upgrade: websocket", http.StatusUpgradeRequired)
		return
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "websocket: want Sec-WebSocket-Version 13", http.StatusUpgradeRequired)
		return
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		http.Error(w, "websocket: Sec-WebSocket-Key must be 16 bytes in base64", http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "websocket: needs an HTTP/1.1 connection: "+err.Error(), http.StatusBadRequest)
		return
	}
	defer conn.Close()
	// Hijacked connections are no longer the server's: close this one when the request
	// context ends (Serve shutting down).
	stop := context.AfterFunc(r.Context(), func() { conn.Close() })
	defer stop()
	_ = conn.SetDeadline(time.Time{})

	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: %s\r\nX-Backend: %s\r\n\r\n", WebSocketAccept(key), s.Name)
	if err := brw.Flush(); err != nil {
		return
	}
	_ = wsEcho(brw.Reader, brw.Writer)
}

// wsEcho runs the echo loop until the peer closes, an error, or a protocol violation
// (answered with a close frame naming the reason).
func wsEcho(r *bufio.Reader, w *bufio.Writer) error {
	var buf []byte
	fragmented := false // inside a message whose first frame had FIN clear
	for {
		f, err := readWSFrame(r, buf)
		var perr *wsProtocolError
		if errors.As(err, &perr) {
			_ = writeWSFrame(w, true, wsClose, wsClosePayload(perr.status, perr.reason))
			return err
		}
		if err != nil {
			return err
		}
		buf = f.payload[:0]
		switch f.op {
		case wsText, wsBinary, wsContinuation:
			if (f.op == wsContinuation) != fragmented {
				_ = writeWSFrame(w, true, wsClose, wsClosePayload(wsStatusProtocolError, "unexpected continuation state"))
				return errors.New("websocket: bad fragmentation")
			}
			fragmented = !f.fin
			if err := writeWSFrame(w, f.fin, f.op, f.payload); err != nil {
				return err
			}
		case wsPing:
			if err := writeWSFrame(w, true, wsPong, f.payload); err != nil {
				return err
			}
		case wsPong:
		case wsClose:
			p := f.payload
			if len(p) > 2 {
				p = p[:2] // echo the status code, not the reason
			}
			return writeWSFrame(w, true, wsClose, p)
		}
	}
}

type wsFrame struct {
	fin     bool
	op      byte
	payload []byte
}

type wsProtocolError struct {
	status uint16
	reason string
}

func (e *wsProtocolError) Error() string {
	return fmt.Sprintf("websocket: %s (close %d)", e.reason, e.status)
}

// readWSFrame reads one client frame, unmasking its payload into buf (grown as needed).
func readWSFrame(r *bufio.Reader, buf []byte) (wsFrame, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return wsFrame{}, err
	}
	f := wsFrame{fin: h[0]&0x80 != 0, op: h[0] & 0x0f}
	masked := h[1]&0x80 != 0
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(r, h[:2]); err != nil {
			return wsFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		if _, err := io.ReadFull(r, h[:8]); err != nil {
			return wsFrame{}, err
		}
		n = binary.BigEndian.Uint64(h[:8])
	}
	switch {
	case h[0]&0x70 != 0:
		return wsFrame{}, &wsProtocolError{wsStatusProtocolError, "reserved bits set"}
	case !masked:
		return wsFrame{}, &wsProtocolError{wsStatusProtocolError, "client frame not masked"}
	case f.op >= wsClose && f.op <= wsPong && (!f.fin || n > 125):
		return wsFrame{}, &wsProtocolError{wsStatusProtocolError, "fragmented or long control frame"}
	case f.op > wsBinary && (f.op < wsClose || f.op > wsPong):
		return wsFrame{}, &wsProtocolError{wsStatusProtocolError, fmt.Sprintf("unknown opcode %#x", f.op)}
	case n > MaxWebSocketFrame:
		return wsFrame{}, &wsProtocolError{wsStatusTooBig, fmt.Sprintf("frame of %d bytes over %d", n, MaxWebSocketFrame)}
	}
	var mask [4]byte
	if _, err := io.ReadFull(r, mask[:]); err != nil {
		return wsFrame{}, err
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	f.payload = buf[:n]
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return wsFrame{}, err
	}
	for i := range f.payload {
		f.payload[i] ^= mask[i&3]
	}
	return f, nil
}

// writeWSFrame writes one unmasked server frame and flushes it.
func writeWSFrame(w *bufio.Writer, fin bool, op byte, p []byte) error {
	var h [10]byte
	h[0] = op
	if fin {
		h[0] |= 0x80
	}
	n := 2
	switch {
	case len(p) <= 125:
		h[1] = byte(len(p))
	case len(p) <= 0xffff:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(len(p)))
		n = 4
	default:
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:], uint64(len(p)))
		n = 10
	}
	if _, err := w.Write(h[:n]); err != nil {
		return err
	}
	if _, err := w.Write(p); err != nil {
		return err
	}
	return w.Flush()
}

func wsClosePayload(status uint16, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, status)
	return append(p, reason[:min(len(reason), 123)]...)
}

// headerHasToken reports whether a comma-separated header field contains token,
// compared case-insensitively.
func headerHasToken(h http.Header, field, token string) bool {
	for _, v := range h.Values(field) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
