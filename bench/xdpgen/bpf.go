package xdpgen

// The BPF objects are compiled by bpf2go and committed (xdpgen_bpfel.o,
// xdpcount_bpfel.o), so building Go needs no clang; `make generate-bpf`
// regenerates them. Paths are relative so the objects do not depend on the
// checkout's location.
//go:generate go tool bpf2go -tags linux -target bpfel -type gen_stats xdpGen ../../bpf/bench/xdp_gen.c -- -O2 -g -mcpu=v3 -Wall -Werror -I../../bpf/include -I/usr/include -I/usr/include/x86_64-linux-gnu
//go:generate go tool bpf2go -tags linux -target bpfel -type count_stats xdpCount ../../bpf/bench/xdp_count.c -- -O2 -g -mcpu=v3 -Wall -Werror -I../../bpf/include -I/usr/include -I/usr/include/x86_64-linux-gnu
