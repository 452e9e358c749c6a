package oom

//go:generate go tool bpf2go -cc ../../bpf/clang.sh -target amd64,arm64 Oom ../../bpf/oom.bpf.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror
