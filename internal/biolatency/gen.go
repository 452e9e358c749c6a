package biolatency

//go:generate go tool bpf2go -cc ../../bpf/clang.sh -target amd64,arm64 -type bio_key -type bio_start -type bio_errs Biolatency ../../bpf/biolatency.bpf.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror
