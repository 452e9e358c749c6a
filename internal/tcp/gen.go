package tcp

//go:generate go tool bpf2go -cc ../../bpf/clang.sh -target amd64,arm64 -type tcp_val -type tcp_errs -type tcp_rec -type tcp_live Tcp ../../bpf/tcp.bpf.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror
