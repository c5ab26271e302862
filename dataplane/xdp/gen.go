package xdp

//go:generate go tool bpf2go -tags linux -target bpfel -type listener -type backend -type flow_key -type flow -type svc_key -type persist_key -type persist_val -type acl_key -type eligible_key -type lstats -type bstats -type gstats lb ../../bpf/xdp/lb.c -- -O2 -g -mcpu=v3 -Wall -Werror -I../../bpf/include -I/usr/include -I/usr/include/x86_64-linux-gnu
