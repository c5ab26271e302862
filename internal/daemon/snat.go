package daemon

import (
	"context"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
	"github.com/xlbproject/xlb/dataplane/xdp"
)

// xdpSnatStatus answers the control API's GetSnatStatus from the XDP
// engine, the one engine that translates.
type xdpSnatStatus struct{ e *xdp.Engine }

func (s xdpSnatStatus) SnatStatus(context.Context) (*xlbv1.GetSnatStatusResponse, error) {
	pools := s.e.SNATStatus()
	out := &xlbv1.GetSnatStatusResponse{}
	if len(pools) == 0 {
		out.Message = "no snat pools are configured"
	}
	for _, p := range pools {
		ps := &xlbv1.SnatPoolStatus{Id: p.ID}
		for _, ip := range p.PublicIPs {
			ps.PublicIps = append(ps.PublicIps, &xlbv1.SnatPublicIpStatus{
				Ip: ip.IP.String(), PortsInUse: uint64(ip.InUse), PortsTotal: uint64(ip.Allocated),
			})
		}
		for _, h := range p.Hosts {
			ps.Hosts = append(ps.Hosts, &xlbv1.SnatHostStatus{Host: h.Host.String(), PortsInUse: uint64(h.InUse)})
		}
		out.Pools = append(out.Pools, ps)
	}
	return out, nil
}
