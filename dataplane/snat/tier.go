package snat

// Port space of a public IP per protocol.
const (
	PortMin = 1024
	PortMax = 65535
	// Ports is the number of ports of one public IP and protocol.
	Ports = PortMax - PortMin + 1 // 64512
	// unit is the smallest block: the planner's allocation granule.
	unit  = 32
	units = Ports / unit // 2016
)

// MaxHosts is the largest pool (the last tier).
const MaxHosts = 1000

// BlockSize is the number of ports per block for a pool of hosts hosts:
// 1-50 hosts 1024, 51-100 512, 101-200 256, 201-400 128, 401-800 64,
// 801-1000 32. With the largest host count of a tier, one block per host
// fills 51,200 of a public IP's 64,512 ports.
func BlockSize(hosts int) int {
	switch {
	case hosts <= 50:
		return 1024
	case hosts <= 100:
		return 512
	case hosts <= 200:
		return 256
	case hosts <= 400:
		return 128
	case hosts <= 800:
		return 64
	default:
		return 32
	}
}
