package health

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCodesAccepts(t *testing.T) {
	tests := []struct {
		codes  Codes
		status int
		want   bool
	}{
		{HTTP2xx, 200, true},
		{HTTP2xx, 204, true},
		{HTTP2xx, 301, false},
		{HTTP2xx | HTTP3xx, 302, true},
		{HTTP4xx, 404, true},
		{HTTP5xx, 503, true},
		{HTTP2xx | HTTP3xx, 503, false},
		{allCodes, 101, false},
		{allCodes, 600, false},
	}
	for _, tt := range tests {
		if got := tt.codes.Accepts(tt.status); got != tt.want {
			t.Errorf("%v.Accepts(%d) = %v, want %v", tt.codes, tt.status, got, tt.want)
		}
	}
	if got := (HTTP2xx | HTTP5xx).String(); got != "http_2xx,http_5xx" {
		t.Errorf("String() = %q", got)
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   Spec
		want Spec
	}{
		{
			name: "tcp defaults and stray fields cleared",
			in:   Spec{Type: TCP, Path: "/x", Host: "h", Request: "r", Codes: HTTP4xx},
			want: Spec{Type: TCP, Timeout: 5 * time.Second, Interval: 2 * time.Second, Rise: 3, Fall: 3},
		},
		{
			name: "http defaults",
			in:   Spec{Type: HTTP, Request: "r"},
			want: Spec{Type: HTTP, Path: "/", Codes: HTTP2xx | HTTP3xx, Timeout: 5 * time.Second, Interval: 2 * time.Second, Rise: 3, Fall: 3},
		},
		{
			name: "udp defaults",
			in:   Spec{Type: UDP, Request: "ping", Response: "pong", Path: "/"},
			want: Spec{Type: UDP, Request: "ping", Response: "pong", Timeout: 10 * time.Second, Interval: 5 * time.Second, Rise: 3, Fall: 3},
		},
		{
			name: "explicit values kept",
			in:   Spec{Type: HTTP, Path: "/h", Codes: HTTP4xx, Timeout: time.Second, Interval: 3 * time.Second, Rise: 2, Fall: 10},
			want: Spec{Type: HTTP, Path: "/h", Codes: HTTP4xx, Timeout: time.Second, Interval: 3 * time.Second, Rise: 2, Fall: 10},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.Normalize(); got != tt.want {
				t.Errorf("Normalize() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTargetKey(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.1.10:8080")
	k1 := Target{Owner: "x", Addr: a, Spec: Spec{Type: TCP, Port: 8080}}.Key()
	k2 := Target{Owner: "y", Addr: a, Spec: Spec{Type: TCP, Path: "/ignored"}}.Key()
	if k1 != k2 {
		t.Errorf("equivalent targets got different keys: %v vs %v", k1, k2)
	}
	k3 := Target{Addr: a, Spec: Spec{Type: TCP, Port: 9000}}.Key()
	if got := k3.CheckAddr().String(); got != "10.0.1.10:9000" {
		t.Errorf("CheckAddr() = %s, want the override port", got)
	}
	if got := (Target{Addr: a, Spec: Spec{Type: HTTP, Path: "/health"}}).Key().String(); got != "http://10.0.1.10:8080/health" {
		t.Errorf("String() = %q", got)
	}
}

func TestValidate(t *testing.T) {
	ok := netip.MustParseAddrPort("10.0.0.1:80")
	tests := []struct {
		name   string
		target Target
		want   string // "" = valid
	}{
		{"tcp", Target{Addr: ok, Spec: Spec{Type: TCP}}, ""},
		{"http", Target{Addr: ok, Spec: Spec{Type: HTTP, Path: "/health?full=1", Host: "www.example.com"}}, ""},
		{"udp", Target{Addr: ok, Spec: Spec{Type: UDP, Request: "ping", Response: "pong"}}, ""},
		{"no type", Target{Addr: ok, Spec: Spec{}}, "type"},
		{"invalid address", Target{Spec: Spec{Type: TCP}}, "address"},
		{"port zero", Target{Addr: netip.MustParseAddrPort("10.0.0.1:0"), Spec: Spec{Type: TCP}}, "port"},
		{"port zero with override", Target{Addr: netip.MustParseAddrPort("10.0.0.1:0"), Spec: Spec{Type: TCP, Port: 81}}, ""},
		{"negative timeout", Target{Addr: ok, Spec: Spec{Type: TCP, Timeout: -1}}, "timeout"},
		{"negative interval", Target{Addr: ok, Spec: Spec{Type: TCP, Interval: -1}}, "interval"},
		{"negative rise", Target{Addr: ok, Spec: Spec{Type: TCP, Rise: -1}}, "rise"},
		{"negative fall", Target{Addr: ok, Spec: Spec{Type: TCP, Fall: -2}}, "fall"},
		{"relative path", Target{Addr: ok, Spec: Spec{Type: HTTP, Path: "health"}}, "must start with /"},
		{"host with CRLF", Target{Addr: ok, Spec: Spec{Type: HTTP, Host: "a\r\nX-Evil: 1"}}, "host"},
		{"bad codes", Target{Addr: ok, Spec: Spec{Type: HTTP, Codes: 1}}, "codes"},
		{"udp without response", Target{Addr: ok, Spec: Spec{Type: UDP, Request: "ping"}}, "response"},
		{"udp without request", Target{Addr: ok, Spec: Spec{Type: UDP, Response: "pong"}}, "request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.target.Key().validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("validate() = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestCounter(t *testing.T) {
	// results: '+' success, '-' failure; states: the state after each.
	tests := []struct {
		name       string
		rise, fall int
		start      State
		results    string
		states     string // 'U' up, 'D' down
	}{
		{"down after exactly fall", 2, 3, Up, "---", "UUD"},
		{"up after exactly rise", 2, 3, Down, "++", "DU"},
		{"success resets the failure run", 2, 3, Up, "--+--+---", "UUUUUUUUD"},
		{"failure resets the success run", 3, 2, Down, "++-++-+++", "DDDDDDDDU"},
		{"down stays down on failures", 2, 2, Up, "-----+", "UDDDDD"},
		{"rise and fall of one flip every time", 1, 1, Up, "-+-+", "DUDU"},
		{"full cycle", 2, 3, Up, "+--+---+-++", "UUUUUUDDDDU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := counter{rise: tt.rise, fall: tt.fall, state: tt.start}
			prev := c.state
			for i, r := range tt.results {
				changed := c.observe(r == '+')
				want := Up
				if tt.states[i] == 'D' {
					want = Down
				}
				if c.state != want {
					t.Fatalf("after result %d (%q): state %v, want %v", i+1, tt.results[:i+1], c.state, want)
				}
				if changed != (c.state != prev) {
					t.Fatalf("after result %d: observe reported changed=%v, state %v -> %v", i+1, changed, prev, c.state)
				}
				prev = c.state
			}
		})
	}
}
