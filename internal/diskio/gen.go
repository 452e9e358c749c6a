package diskio

//go:generate go tool bpf2go -cc ../../bpf/clang.sh -target amd64,arm64 -type dio_key -type dio_val Diskio ../../bpf/diskio.bpf.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror
