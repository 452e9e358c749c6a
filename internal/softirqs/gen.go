package softirqs

//go:generate go tool bpf2go -cc ../../bpf/clang.sh -target amd64,arm64 -type sirq_key -type sirq_errs Softirqs ../../bpf/softirqs.bpf.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror
