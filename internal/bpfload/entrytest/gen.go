// Package entrytest holds a BPF object that tests kpod.h's kpod_entry under racing first
// uses (TestRealEntryRace); nothing else imports it.
package entrytest

//go:generate go tool bpf2go -cc ../../../bpf/clang.sh -target amd64,arm64 -type entry_key Entry entry.bpf.c -- -I../../../bpf/include -mcpu=v3 -Wall -Werror
