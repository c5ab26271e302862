package load

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// Error kinds, the keys of Result.Errors.
const (
	ErrConnect   = "connect"    // the connection could not be opened (refused, unreachable, timed out)
	ErrTimeout   = "timeout"    // no (complete) answer within the timeout
	ErrReset     = "reset"      // the peer reset the connection (or it broke: EPIPE)
	ErrEOF       = "eof"        // the peer closed before answering anything
	ErrStatus4xx = "status_4xx" // an HTTP answer 400-499
	ErrStatus5xx = "status_5xx" // an HTTP answer 500-599
	ErrShortRead = "short_read" // the peer closed in the middle of an answer
	ErrProtocol  = "protocol"   // a malformed answer (bad status line, header, chunk, datagram)
	ErrOther     = "other"
)

// errKind indexes the per-worker error counters; 0 means success.
type errKind uint8

const (
	kindNone errKind = iota
	kindConnect
	kindTimeout
	kindReset
	kindEOF
	kind4xx
	kind5xx
	kindShortRead
	kindProtocol
	kindOther
	numKinds
)

var kindNames = [numKinds]string{"", ErrConnect, ErrTimeout, ErrReset, ErrEOF, ErrStatus4xx, ErrStatus5xx, ErrShortRead, ErrProtocol, ErrOther}

func (k errKind) String() string { return kindNames[k] }

// errProtocol marks a malformed answer.
var errProtocol = errors.New("malformed answer")

// errShort marks an answer the peer cut off.
var errShort = errors.New("answer cut short")

// classify maps an error of an established connection to its kind. got says whether
// any byte of the answer had arrived, which separates eof from short_read.
func classify(err error, got bool) errKind {
	switch {
	case err == nil:
		return kindNone
	case errors.Is(err, errProtocol):
		return kindProtocol
	case errors.Is(err, errShort):
		return kindShortRead
	case errors.Is(err, os.ErrDeadlineExceeded):
		return kindTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return kindReset
	case errors.Is(err, syscall.ECONNREFUSED): // connected UDP sockets learn it from ICMP
		return kindConnect
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		if got {
			return kindShortRead
		}
		return kindEOF
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return kindTimeout
	}
	var re tls.RecordHeaderError
	if errors.As(err, &re) {
		return kindProtocol
	}
	return kindOther
}

// statusKind maps an HTTP status to its kind: 4xx and 5xx are errors, anything else
// (1xx are skipped by the clients, 2xx, 3xx) is a success.
func statusKind(code int) errKind {
	switch {
	case code >= 500:
		return kind5xx
	case code >= 400:
		return kind4xx
	}
	return kindNone
}
