package proc

//go:generate go tool bpf2go -cc ../../bpf/clang.sh -target amd64,arm64 -type proc_val Proc ../../bpf/proc.bpf.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror
