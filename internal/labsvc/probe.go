package labsvc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/internal/netlab"
)

// SeenAs asks a test backend, through the VIP on port, which address the
// request came from: the client's own (NAT mode) or the gateway's (a proxy
// or FullNAT). The request is made from host.
func SeenAs(ctx context.Context, lab *netlab.Lab, host string, port int) (netip.Addr, error) {
	hc := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: lab.Dialer(host), DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(netlab.VIP, strconv.Itoa(port))+"/headers", nil)
	if err != nil {
		return netip.Addr{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return netip.Addr{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return netip.Addr{}, err
	}
	var hdrs map[string][]string
	if err := json.Unmarshal(body, &hdrs); err != nil {
		return netip.Addr{}, fmt.Errorf("/headers: %w: %s", err, body)
	}
	ra := hdrs[serve.HeadersKeyRemoteAddr]
	if len(ra) == 0 {
		return netip.Addr{}, fmt.Errorf("/headers has no %s", serve.HeadersKeyRemoteAddr)
	}
	ap, err := netip.ParseAddrPort(ra[0])
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}

// LiveFlows is a TCP connection and a UDP flow from the client through the
// VIP's tcp 7000 and udp 7001 listeners, kept open so that a test can check
// they survive what it does to the gateway (a restart, a reload).
type LiveFlows struct {
	tcp, udp net.Conn
	udpName  string // the backend that answers the UDP flow
}

// OpenLiveFlows opens both flows and learns their backends.
func OpenLiveFlows(ctx context.Context, lab *netlab.Lab) (*LiveFlows, error) {
	vip := func(port int) string { return net.JoinHostPort(netlab.VIP, strconv.Itoa(port)) }
	tc, err := lab.Dial(ctx, netlab.HostClient, "tcp", vip(TCPPort))
	if err != nil {
		return nil, err
	}
	uc, err := lab.Dial(ctx, netlab.HostClient, "udp", vip(UDPPort))
	if err != nil {
		tc.Close()
		return nil, err
	}
	f := &LiveFlows{tcp: tc, udp: uc}
	if _, err := serve.WhoAmITCP(ctx, tc); err != nil {
		f.Close()
		return nil, fmt.Errorf("tcp flow: %w", err)
	}
	if f.udpName, err = serve.WhoAmIUDP(ctx, uc); err != nil {
		f.Close()
		return nil, fmt.Errorf("udp flow: %w", err)
	}
	return f, nil
}

// Check fails unless the TCP connection still echoes and the UDP flow is
// still answered by the same backend.
func (f *LiveFlows) Check(ctx context.Context) error {
	msg := []byte("still here\n")
	if _, err := f.tcp.Write(msg); err != nil {
		return fmt.Errorf("the TCP connection broke: %w", err)
	}
	buf := make([]byte, len(msg))
	_ = f.tcp.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(f.tcp, buf); err != nil || string(buf) != string(msg) {
		return fmt.Errorf("the TCP connection broke: read %q, %v", buf, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if name, err := serve.WhoAmIUDP(ctx, f.udp); err != nil || name != f.udpName {
		return fmt.Errorf("the UDP flow answered %q (%v), want %q", name, err, f.udpName)
	}
	return nil
}

// TCP is the long-lived TCP connection.
func (f *LiveFlows) TCP() net.Conn { return f.tcp }

// Close closes both flows.
func (f *LiveFlows) Close() {
	f.tcp.Close()
	f.udp.Close()
}
