package config

import (
	"google.golang.org/protobuf/proto"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

// preset is one limits preset (a load balancer "spec").
type preset struct {
	name                                 string
	maxConns, newConnsPerSec, reqsPerSec uint64
}

// presets returns the limits presets, smallest first.
func presets() []preset {
	return []preset{
		{"slb.s1.small", 5000, 3000, 1000},
		{"slb.s2.small", 50000, 5000, 5000},
		{"slb.s2.medium", 100000, 10000, 10000},
		{"slb.s3.small", 200000, 20000, 20000},
		{"slb.s3.medium", 500000, 50000, 30000},
		{"slb.s3.large", 1000000, 100000, 50000},
	}
}

// PresetNames lists the known specs, smallest first.
func PresetNames() []string {
	ps := presets()
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.name
	}
	return names
}

// Preset returns the limits of a spec, and false for an unknown spec.
func Preset(spec string) (*xlbv1.Limits, bool) {
	for _, p := range presets() {
		if p.name == spec {
			return &xlbv1.Limits{
				MaxConnections:          p.maxConns,
				NewConnectionsPerSecond: p.newConnsPerSec,
				RequestsPerSecond:       p.reqsPerSec,
			}, true
		}
	}
	return nil, false
}

// EffectiveLimits returns the limits a load balancer runs with: its spec's
// preset, or its explicit limits (a copy), or nil when it has neither
// (unlimited). A zero field in the result is unlimited.
func EffectiveLimits(lb *xlbv1.LoadBalancer) *xlbv1.Limits {
	if lb.GetSpec() != "" {
		l, _ := Preset(lb.GetSpec())
		return l
	}
	if lb.GetLimits() != nil {
		return proto.Clone(lb.GetLimits()).(*xlbv1.Limits)
	}
	return nil
}
