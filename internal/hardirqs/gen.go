package hardirqs

//go:generate go tool bpf2go -cc ../../bpf/clang.sh -target amd64,arm64 -type hirq_val -type hirq_errs Hardirqs ../../bpf/hardirqs.bpf.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror
