package xdpgen

import (
	"net/netip"
	"strings"
	"testing"
)

func TestBuildFrame(t *testing.T) {
	tests := []struct {
		name        string
		spec        FrameSpec
		wantLen     int
		wantPayload int
	}{
		{"udp4 minimum", testSpec("10.0.0.1", "10.0.0.2", UDP, 0), 60, 18},
		{"udp4 60", testSpec("10.0.0.1", "10.0.0.2", UDP, 60), 60, 18},
		{"udp4 odd", testSpec("10.0.0.1", "10.0.0.2", UDP, 61), 61, 19},
		{"udp4 1514", testSpec("192.0.2.1", "198.51.100.7", UDP, 1514), 1514, 1472},
		{"syn4 60", testSpec("10.0.0.1", "10.0.0.2", SYN, 60), 60, 6},
		{"syn4 512", testSpec("10.0.0.1", "10.0.0.2", SYN, 512), 512, 458},
		{"udp6 minimum", testSpec("fd00::1", "fd00::2", UDP, 0), 62, 0},
		{"udp6 100", testSpec("fd00::1", "fd00::2", UDP, 100), 100, 38},
		{"syn6 minimum", testSpec("2001:db8::1", "2001:db8::2", SYN, 0), 74, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFrame(t, tt.spec)
			if len(f) != tt.wantLen {
				t.Fatalf("len = %d, want %d", len(f), tt.wantLen)
			}
			d := decode(t, f)
			if !d.checksumsCorrect {
				t.Error("checksums differ from gopacket's")
			}
			if d.src != tt.spec.Src || d.dst != tt.spec.Dst || d.sport != tt.spec.SrcPort || d.dport != tt.spec.DstPort {
				t.Errorf("decoded %s:%d -> %s:%d", d.src, d.sport, d.dst, d.dport)
			}
			if d.srcMAC.String() != tt.spec.SrcMAC.String() || d.dstMAC.String() != tt.spec.DstMAC.String() {
				t.Errorf("MACs %s -> %s", d.srcMAC, d.dstMAC)
			}
			if d.udp != (tt.spec.Proto == UDP) || d.syn != (tt.spec.Proto == SYN) {
				t.Errorf("udp=%v syn=%v for %v", d.udp, d.syn, tt.spec.Proto)
			}
			if d.payloadLen != tt.wantPayload {
				t.Errorf("payload %d bytes, want %d", d.payloadLen, tt.wantPayload)
			}
			p, v := Parse(f)
			if v != ParseOK || p.SrcPort != tt.spec.SrcPort || p.DstPort != tt.spec.DstPort {
				t.Errorf("Parse = %+v, %v", p, v)
			}
		})
	}
}

func TestBuildFrameErrors(t *testing.T) {
	good := testSpec("10.0.0.1", "10.0.0.2", UDP, 60)
	tests := []struct {
		name string
		edit func(*FrameSpec)
		want string
	}{
		{"short", func(s *FrameSpec) { s.Size = 59 }, "size 59"},
		{"long", func(s *FrameSpec) { s.Size = 1515 }, "size 1515"},
		{"mixed families", func(s *FrameSpec) { s.Dst = netip.MustParseAddr("fd00::2") }, "different families"},
		{"no address", func(s *FrameSpec) { s.Src = netip.Addr{} }, "addresses are required"},
		{"mapped", func(s *FrameSpec) { s.Src = netip.MustParseAddr("::ffff:10.0.0.1") }, "IPv4-mapped"},
		{"no MAC", func(s *FrameSpec) { s.DstMAC = nil }, "destination MAC"},
		{"proto", func(s *FrameSpec) { s.Proto = 9 }, "protocol"},
		{"v6 syn too short", func(s *FrameSpec) {
			s.Src, s.Dst, s.Proto, s.Size = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2"), SYN, 70
		}, "headers alone take 74"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.edit(&s)
			_, err := BuildFrame(s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestParseProto(t *testing.T) {
	for in, want := range map[string]Proto{"udp": UDP, "UDP": UDP, "syn": SYN, "tcp": SYN} {
		if got, err := ParseProto(in); err != nil || got != want {
			t.Errorf("ParseProto(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseProto("icmp"); err == nil {
		t.Error("ParseProto(icmp) accepted")
	}
}
