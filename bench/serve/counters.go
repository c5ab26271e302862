package serve

// PathClass groups HTTP requests by endpoint for counting.
type PathClass uint8

// Path classes, one per endpoint. PathRoot is every path that is not another endpoint.
const (
	PathRoot PathClass = iota
	PathHealth
	PathHeaders
	PathCookie
	PathCookies
	PathBytes
	PathEcho
	PathDelay
	PathStatus
	PathWebSocket
	NumPathClasses // the number of classes, for arrays indexed by PathClass
)

func (c PathClass) String() string {
	switch c {
	case PathRoot:
		return "root"
	case PathHealth:
		return "health"
	case PathHeaders:
		return "headers"
	case PathCookie:
		return "cookie"
	case PathCookies:
		return "cookies"
	case PathBytes:
		return "bytes"
	case PathEcho:
		return "echo"
	case PathDelay:
		return "delay"
	case PathStatus:
		return "status"
	case PathWebSocket:
		return "ws"
	}
	return "unknown"
}

// Counters is a snapshot of a backend's counters. Each backend fills the fields that
// apply to it: HTTP fills Requests, ByPath and Connections; TCPEcho fills Connections and
// the byte counts; UDPEcho fills the datagram and byte counts. Counters is comparable
// with ==.
type Counters struct {
	Requests     uint64                 // HTTP requests, all paths
	ByPath       [NumPathClasses]uint64 // HTTP requests per PathClass
	Connections  uint64                 // connections accepted
	BytesIn      uint64                 // TCP/UDP payload bytes received
	BytesOut     uint64                 // TCP/UDP payload bytes sent (echo and whoami replies)
	DatagramsIn  uint64                 // UDP datagrams received
	DatagramsOut uint64                 // UDP datagrams sent
}

// Sub returns c - prev, field by field: the activity between two snapshots.
func (c Counters) Sub(prev Counters) Counters {
	d := Counters{
		Requests:     c.Requests - prev.Requests,
		Connections:  c.Connections - prev.Connections,
		BytesIn:      c.BytesIn - prev.BytesIn,
		BytesOut:     c.BytesOut - prev.BytesOut,
		DatagramsIn:  c.DatagramsIn - prev.DatagramsIn,
		DatagramsOut: c.DatagramsOut - prev.DatagramsOut,
	}
	for i := range d.ByPath {
		d.ByPath[i] = c.ByPath[i] - prev.ByPath[i]
	}
	return d
}
