package irq

// One source, two objects: each collector loads only its own hooks.
//go:generate go tool bpf2go -cc clang-19 -target amd64,arm64 -type hirq_val -type hirq_errs Hardirqs ../../bpf/irq.bpf.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror -DKPOD_HARDIRQS
//go:generate go tool bpf2go -cc clang-19 -target amd64,arm64 -type sirq_key -type sirq_errs Softirqs ../../bpf/irq.bpf.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror -DKPOD_SOFTIRQS
