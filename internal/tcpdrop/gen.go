package tcpdrop

//go:generate go tool bpf2go -cc ../../bpf/clang.sh -target amd64,arm64 -type drop_key -type tdrop_errs Tcpdrop ../../bpf/tcpdrop.bpf.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror
