package xdp

//go:generate go tool bpf2go -tags linux -target bpfel -type listener -type backend -type flow_key -type flow -type svc_key -type persist_key -type persist_val -type acl_key -type eligible_key -type lstats -type bstats -type gstats -type nat_prefix_key -type nat_private -type nat_pool -type nat_block -type nat_host_key -type nat_host -type nat_spare -type nat_egress -type nat_eip -type nat_fail_key -type nat_stats lb ../../bpf/xdp/lb.c -- -O2 -g -mcpu=v3 -Wall -Werror -I../../bpf/include -I/usr/include -I/usr/include/x86_64-linux-gnu
