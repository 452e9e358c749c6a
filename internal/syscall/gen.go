package syscall

//go:generate go tool bpf2go -cc ../../bpf/clang.sh -target amd64,arm64 -type sys_key -type sys_val -type sys_slot -type sys_way Syscall ../../bpf/syscall.bpf.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror
//go:generate go run mktable.go
