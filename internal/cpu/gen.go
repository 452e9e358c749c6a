package cpu

//go:generate go tool bpf2go -cc ../../bpf/clang.sh -target amd64,arm64 -type cpu_val -type cpu_errs Cpu ../../bpf/cpu.bpf.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror
