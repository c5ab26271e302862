package l7

import (
	"encoding/binary"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Frames xlb's HTTP/2 server writes, appended to the connection's output
// buffer so that many streams' frames leave in one write (RFC 9113 §4.1).
// Reading goes through x/net's Framer, which validates every frame.

const (
	h2FrameHeaderLen = 9
	h2MaxWindow      = 1<<31 - 1
	h2DefaultWindow  = 65535

	// What xlb announces: streams per connection (HAProxy's default too),
	// a stream's receive window and the connection's, which bounds the
	// request body bytes a connection buffers.
	h2MaxStreams  = 100
	h2StreamWin   = 256 << 10
	h2ConnWin     = 1 << 20
	h2MaxFrameLen = 16 << 10
)

func appendFrameHeader(b []byte, length int, t http2.FrameType, flags http2.Flags, stream uint32) []byte {
	return append(b, byte(length>>16), byte(length>>8), byte(length), byte(t), byte(flags),
		byte(stream>>24)&0x7f, byte(stream>>16), byte(stream>>8), byte(stream))
}

func appendSettings(b []byte, ss ...http2.Setting) []byte {
	b = appendFrameHeader(b, 6*len(ss), http2.FrameSettings, 0, 0)
	for _, s := range ss {
		b = binary.BigEndian.AppendUint16(b, uint16(s.ID))
		b = binary.BigEndian.AppendUint32(b, s.Val)
	}
	return b
}

func appendSettingsAck(b []byte) []byte {
	return appendFrameHeader(b, 0, http2.FrameSettings, http2.FlagSettingsAck, 0)
}

func appendPingAck(b []byte, data [8]byte) []byte {
	b = appendFrameHeader(b, 8, http2.FramePing, http2.FlagPingAck, 0)
	return append(b, data[:]...)
}

func appendWindowUpdate(b []byte, stream, incr uint32) []byte {
	b = appendFrameHeader(b, 4, http2.FrameWindowUpdate, 0, stream)
	return binary.BigEndian.AppendUint32(b, incr&0x7fffffff)
}

func appendRSTStream(b []byte, stream uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 4, http2.FrameRSTStream, 0, stream)
	return binary.BigEndian.AppendUint32(b, uint32(code))
}

func appendGoAway(b []byte, last uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 8, http2.FrameGoAway, 0, 0)
	b = binary.BigEndian.AppendUint32(b, last&0x7fffffff)
	return binary.BigEndian.AppendUint32(b, uint32(code))
}

// appendData appends p as DATA frames of at most maxFrame bytes; end sets
// END_STREAM on the last (an empty frame when p is empty).
func appendData(b []byte, stream uint32, p []byte, end bool, maxFrame int) []byte {
	for {
		n := min(len(p), maxFrame)
		var flags http2.Flags
		if end && n == len(p) {
			flags = http2.FlagDataEndStream
		}
		b = appendFrameHeader(b, n, http2.FrameData, flags, stream)
		b = append(b, p[:n]...)
		p = p[n:]
		if len(p) == 0 {
			return b
		}
	}
}

// appendHeaders appends a header block as one HEADERS frame and as many
// CONTINUATION frames as maxFrame needs; the caller holds the write lock
// for all of them, since nothing may come between (RFC 9113 §6.10).
func appendHeaders(b []byte, stream uint32, block []byte, end bool, maxFrame int) []byte {
	t := http2.FrameHeaders
	var flags http2.Flags
	if end {
		flags = http2.FlagHeadersEndStream
	}
	for {
		n := min(len(block), maxFrame)
		f := flags
		if n == len(block) {
			f |= http2.FlagHeadersEndHeaders
		}
		b = appendFrameHeader(b, n, t, f, stream)
		b = append(b, block[:n]...)
		block = block[n:]
		if len(block) == 0 {
			return b
		}
		t, flags = http2.FrameContinuation, 0
	}
}

// Response header blocks use no dynamic table: each block stands alone, so
// streams encode theirs without a shared encoder and in any order, at the
// cost of a few bytes per repeated field. Field names in the static table
// are sent by index.

// statusIndex is the static table's index of ":status: code", 0 if none.
func statusIndex(code int) byte {
	switch code {
	case 200:
		return 8
	case 204:
		return 9
	case 206:
		return 10
	case 304:
		return 11
	case 400:
		return 12
	case 404:
		return 13
	case 500:
		return 14
	}
	return 0
}

// appendStatus appends the :status field.
func appendStatus(b []byte, code int) []byte {
	if i := statusIndex(code); i != 0 {
		return append(b, 0x80|i)
	}
	b = append(b, 0x08, 3) // literal without indexing, name index 8 (:status)
	return append(b, byte('0'+code/100%10), byte('0'+code/10%10), byte('0'+code%10))
}

// appendHpackInt appends v with an n-bit prefix whose other bits are first
// (RFC 7541 §5.1).
func appendHpackInt(b []byte, first byte, n uint, v uint64) []byte {
	max := uint64(1)<<n - 1
	if v < max {
		return append(b, first|byte(v))
	}
	b = append(b, first|byte(max))
	v -= max
	for v >= 128 {
		b = append(b, byte(v&0x7f|0x80))
		v >>= 7
	}
	return append(b, byte(v))
}

// appendHpackString appends s Huffman-coded when that is shorter.
func appendHpackString(b []byte, s []byte) []byte {
	if h := hpack.HuffmanEncodeLength(string(s)); h < uint64(len(s)) {
		b = appendHpackInt(b, 0x80, 7, h)
		return hpack.AppendHuffmanString(b, string(s))
	}
	b = appendHpackInt(b, 0, 7, uint64(len(s)))
	return append(b, s...)
}

// appendField appends name (lower case) and value as a literal without
// indexing; a name in the static table goes by its index.
func appendHpackField(b []byte, lower, value []byte) []byte {
	if i := staticNameIndex(lower); i != 0 {
		b = appendHpackInt(b, 0x00, 4, uint64(i))
	} else {
		b = append(b, 0x00)
		b = appendHpackString(b, lower)
	}
	return appendHpackString(b, value)
}

// staticNameIndex is the static table's first index for a response field
// name (RFC 7541 Appendix A), 0 if none.
func staticNameIndex(name []byte) int {
	switch string(name) {
	case "accept-ranges":
		return 18
	case "access-control-allow-origin":
		return 20
	case "age":
		return 21
	case "allow":
		return 22
	case "cache-control":
		return 24
	case "content-disposition":
		return 25
	case "content-encoding":
		return 26
	case "content-language":
		return 27
	case "content-length":
		return 28
	case "content-location":
		return 29
	case "content-range":
		return 30
	case "content-type":
		return 31
	case "date":
		return 33
	case "etag":
		return 34
	case "expires":
		return 36
	case "last-modified":
		return 44
	case "link":
		return 45
	case "location":
		return 46
	case "refresh":
		return 52
	case "retry-after":
		return 53
	case "server":
		return 54
	case "set-cookie":
		return 55
	case "strict-transport-security":
		return 56
	case "vary":
		return 59
	case "via":
		return 60
	case "www-authenticate":
		return 61
	}
	return 0
}

// h2ConnectionSpecific are fields HTTP/2 forbids (RFC 9113 §8.2.2); the
// backend's are dropped from responses, a client's make its request
// malformed.
func h2ConnectionSpecific(lower []byte) bool {
	switch string(lower) {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}

// appendLower appends name in lower case.
func appendLower(b, name []byte) []byte {
	for _, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}
