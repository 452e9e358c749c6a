package cachestat

//go:generate go tool bpf2go -cc ../../bpf/clang.sh -target amd64,arm64 -type cache_val -type cache_errs Cachestat ../../bpf/cachestat.bpf.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror
